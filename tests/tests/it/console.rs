//! The web console and the portal: their HTTP side (the page's security headers, portal
//! links scoped to one hook and expiring, the hooks search), and the whole of it in a real
//! headless Chromium driven by `tests/browser/console.test.mjs` against a real pipeline.

use std::path::{Path, PathBuf};
use std::time::Duration;

use futures::StreamExt;
use hookbus_tests::pipeline::{ADMIN_TOKEN, INGEST_TOKEN};
use hookbus_tests::{check, eventually, tools, Pipeline, Receiver};
use reqwest::header::HeaderMap;
use reqwest::Method;
use serde_json::{json, Value};

fn header<'a>(headers: &'a HeaderMap, name: &str) -> &'a str {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

/// A request to the router with `Authorization: <auth>` (none when empty): status, headers
/// and JSON body (`null` when there is none).
async fn call(
    p: &Pipeline,
    method: Method,
    path: &str,
    auth: &str,
    body: Option<Value>,
) -> (u16, HeaderMap, Value) {
    let mut req = p
        .http
        .request(method, format!("http://{}{path}", p.router.addr));
    if !auth.is_empty() {
        req = req.header("authorization", auth);
    }
    if let Some(body) = body {
        req = req.json(&body);
    }
    let res = req.send().await.expect("the router answers");
    let (status, headers) = (res.status().as_u16(), res.headers().clone());
    (status, headers, res.json().await.unwrap_or(Value::Null))
}

fn admin() -> String {
    format!("Bearer {ADMIN_TOKEN}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_is_served_offline_under_a_strict_policy() {
    let p = Pipeline::start_with("console-http", &[], 0).await;
    let base = format!("http://{}", p.router.addr);
    let pages = [
        ("/console", "text/html"),
        ("/console/console.js", "text/javascript"),
        ("/console/console.css", "text/css"),
        ("/portal/any.token.here", "text/html"),
    ];
    for (path, content_type) in pages {
        let res = p.http.get(format!("{base}{path}")).send().await.unwrap();
        assert_eq!(res.status(), 200, "{path}");
        let headers = res.headers().clone();
        assert!(
            header(&headers, "content-type").starts_with(content_type),
            "{path}"
        );
        let policy = header(&headers, "content-security-policy");
        for directive in [
            "default-src 'self'",
            "script-src 'self'",
            "style-src 'self'",
        ] {
            assert!(policy.contains(directive), "{path}: {policy}");
        }
        assert!(!policy.contains("unsafe"), "{path}: {policy}");
        assert!(
            policy.contains("frame-ancestors 'none'"),
            "{path}: {policy}"
        );
        assert_eq!(header(&headers, "x-content-type-options"), "nosniff");
        assert_eq!(header(&headers, "referrer-policy"), "no-referrer");
        let body = res.text().await.unwrap();
        // The one address in them is the example in the URL field; the SVG namespace is a
        // name, not an address anything is loaded from.
        let body = body
            .replace("'https://example.com/webhook'", "")
            .replace("'http://www.w3.org/2000/svg'", "");
        assert!(!body.contains("://"), "{path} loads nothing from elsewhere");
    }
    let (status, _, catalogue) = call(&p, Method::GET, "/console/catalogue.json", "", None).await;
    assert_eq!(status, 200);
    let catalogue = catalogue.as_array().unwrap();
    assert_eq!(catalogue.len(), 29);
    assert_eq!(
        catalogue[0],
        json!({"name": "PostRegister", "kind": "interaction"})
    );
    p.stop().await;
}

async fn mint(p: &Pipeline, hook: &str, body: Value) -> (u16, Value) {
    let path = format!("/api/hooks/{hook}/portal-links");
    let (status, _, link) = call(p, Method::POST, &path, &admin(), Some(body)).await;
    (status, link)
}

/// A portal API call (a POST tests or replays `PostSignIn`): status and body.
async fn portal_call(p: &Pipeline, method: Method, path: &str, auth: &str) -> (u16, Value) {
    let body = (method == Method::POST).then(|| json!({"events": ["PostSignIn"]}));
    let (status, _, body) = call(p, method, path, auth, body).await;
    (status, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_portal_link_opens_its_hook_only_and_expires() {
    let p = Pipeline::start("console-portal").await;
    let receiver = Receiver::start().await;
    let mine = p.create_hook(&["PostSignIn"], &receiver.url("mine")).await;
    let other = p.create_hook(&["PostSignIn"], &receiver.url("other")).await;
    let (mine, other) = (mine["id"].as_str().unwrap(), other["id"].as_str().unwrap());

    let minting = format!("/api/hooks/{mine}/portal-links");
    let (status, _, _) = call(&p, Method::POST, &minting, "", None).await;
    assert_eq!(status, 401, "minting needs the admin token");
    assert_eq!(mint(&p, "nosuchhook", json!({})).await.0, 404);
    for lifetime in [0, 31 * 24 * 3600] {
        assert_eq!(mint(&p, mine, json!({"expiresIn": lifetime})).await.0, 400);
    }
    let (status, link) = mint(&p, mine, json!({})).await;
    assert_eq!(status, 201, "{link}");
    let token = link["token"].as_str().unwrap();
    assert_eq!(link["url"], format!("/portal/{token}"));
    assert_eq!(link["hookId"], mine);
    let day_ms = 24 * 3600 * 1000;
    let left = link["expiresAt"].as_i64().unwrap() - hookbus_contracts::payload::now_ms();
    assert!(
        (day_ms - 60_000..=day_ms).contains(&left),
        "a day by default: {left}"
    );
    let auth = format!("Portal {token}");

    let own = format!("/api/portal/hooks/{mine}");
    let (status, hook) = portal_call(&p, Method::GET, &own, &auth).await;
    assert_eq!(status, 200);
    assert_eq!(hook["id"], mine);
    assert!(
        hook["signingKey"].is_string(),
        "the owner sees its signing key"
    );
    for path in ["recent-logs", "dead-letters"] {
        let (status, body) = portal_call(&p, Method::GET, &format!("{own}/{path}"), &auth).await;
        assert_eq!(status, 200, "{path}: {body}");
    }
    let (status, body) = portal_call(&p, Method::POST, &format!("{own}/test"), &auth).await;
    assert_eq!(status, 204, "{body}");
    assert_eq!(
        receiver.wait_for(1, Duration::from_secs(5)).await[0].path,
        "mine",
        "tested at its own URL"
    );
    let elsewhere = json!({"events": ["PostSignIn"], "config": {"url": receiver.url("elsewhere")}});
    let (status, _, _) = call(
        &p,
        Method::POST,
        &format!("{own}/test"),
        &auth,
        Some(elsewhere),
    )
    .await;
    assert_eq!(
        status, 400,
        "a portal test goes to the hook's own endpoint only"
    );
    let replay = format!("{own}/dead-letters/replay");
    let (status, body) = portal_call(&p, Method::POST, &replay, &auth).await;
    assert_eq!((status, &body), (200, &json!({"replayed": 0})));

    let theirs = format!("/api/portal/hooks/{other}");
    for (method, path) in [
        (Method::GET, theirs.clone()),
        (Method::GET, format!("{theirs}/recent-logs")),
        (Method::GET, format!("{theirs}/dead-letters")),
        (Method::POST, format!("{theirs}/dead-letters/replay")),
        (Method::POST, format!("{theirs}/test")),
    ] {
        let (status, body) = portal_call(&p, method.clone(), &path, &auth).await;
        assert_eq!(status, 403, "{method} {path}: {body}");
        assert_eq!(body["code"], "portal.other_hook");
    }
    let altered = auth.replacen(mine, other, 1);
    for refused in ["", admin().as_str(), altered.as_str(), "Portal nonsense"] {
        let (status, body) = portal_call(&p, Method::GET, &own, refused).await;
        assert_eq!(status, 401, "{refused:?}: {body}");
        assert_eq!(body["code"], "portal.link_invalid");
    }
    let (status, _) = portal_call(&p, Method::GET, "/api/hooks", &auth).await;
    assert_eq!(status, 401, "a portal link is no admin token");

    let (_, short) = mint(&p, mine, json!({"expiresIn": 1})).await;
    let short = format!("Portal {}", short["token"].as_str().unwrap());
    assert_eq!(portal_call(&p, Method::GET, &own, &short).await.0, 200);
    let what = "the link minted for a second to stop opening";
    let (status, body) = eventually(what, Duration::from_millis(1100), async || {
        let answer = portal_call(&p, Method::GET, &own, &short).await;
        check(answer, |(status, _)| *status != 200)
    })
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (401, Some("portal.link_expired"))
    );

    let (status, _, _) = call(
        &p,
        Method::DELETE,
        &format!("/api/hooks/{mine}"),
        &admin(),
        None,
    )
    .await;
    assert_eq!(status, 204);
    assert_eq!(
        portal_call(&p, Method::GET, &own, &auth).await.0,
        404,
        "a deleted hook's link shows nothing"
    );
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hooks_are_searched_by_name_or_url_page_by_page() {
    let p = Pipeline::start_with("console-search", &[], 0).await;
    for (name, url) in [
        ("CRM sync", "http://crm.example.test/a"),
        ("billing", "http://pay.example.test/crm"),
        ("audit", "http://audit.example.test/"),
    ] {
        let (status, body) = p
            .post_hook(json!({"name": name, "events": ["PostSignIn"], "config": {"url": url}}))
            .await;
        assert_eq!(status, 201, "{body}");
    }
    let search = |query: &'static str| {
        let p = &p;
        async move {
            let path = format!("/api/hooks?{query}");
            let (status, headers, hooks) = call(p, Method::GET, &path, &admin(), None).await;
            assert_eq!(status, 200, "{hooks}");
            let hooks = hooks.as_array().unwrap();
            let names: Vec<String> = hooks
                .iter()
                .map(|h| h["name"].as_str().unwrap().into())
                .collect();
            (names, header(&headers, "total-number").to_owned())
        }
    };
    assert_eq!(
        search("q=crm").await,
        (vec!["billing".into(), "CRM sync".into()], String::new()),
        "newest first; name or URL; any case"
    );
    assert_eq!(
        search("q=CRM&page=2&page_size=1").await,
        (vec!["CRM sync".into()], "2".into())
    );
    let (hooks, _) = search("q=crm&includeExecutionStats=true&page=1&page_size=5").await;
    assert_eq!(hooks.len(), 2);
    assert_eq!(search("q=nothing&page=1").await, (vec![], "0".into()));
    assert_eq!(
        search("q=&page=1").await.1,
        "3",
        "an empty search is no filter"
    );
    p.stop().await;
}

async fn overview(p: &Pipeline) -> Value {
    let (status, _, body) = call(p, Method::GET, "/api/overview", &admin(), None).await;
    assert_eq!(status, 200, "{body}");
    body
}

/// The overview adds up what every process wrote: events routed and attempts in the last
/// hour, the backlog of a hook whose endpoint is slow (and its oldest waiting delivery), the
/// p99 of its attempts, and each process, ready.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_overview_shows_activity_backlog_and_processes() {
    let p = Pipeline::start("console-overview").await;
    let slow = Receiver::start().await;
    // 64 deliveries in flight per hook, each taking 1.5 s: 600 events wait about 14 s, so
    // a deliverer's depth reading (every 10 s) finds a backlog.
    slow.set_delay(Duration::from_millis(1500));
    let hook = p.create_hook(&["PostSignIn"], &slow.url("slow")).await;
    let id = hook["id"].as_str().unwrap().to_owned();
    p.wait_hooks(1).await;
    let events = 600;
    let accepted: Vec<(u16, Value)> = futures::stream::iter(0..events)
        .map(|_| p.ingest(json!({"event": "PostSignIn"})))
        .buffer_unordered(32)
        .collect()
        .await;
    assert!(accepted.iter().all(|(status, _)| *status == 202));

    let waiting = eventually(
        "a backlog in the overview",
        Duration::from_secs(30),
        async || {
            check(overview(&p).await, |o| {
                o["backlog"]["messages"].as_u64() > Some(0)
            })
        },
    )
    .await;
    let backlog = &waiting["backlog"];
    assert_eq!(backlog["oldestHookId"], id.as_str());
    assert!(backlog["oldestWaitingMs"].as_u64() > Some(0), "{backlog}");
    assert!(backlog["hooksMeasured"].as_u64() >= Some(1), "{backlog}");
    let (status, _, listed) = call(
        &p,
        Method::GET,
        "/api/hooks?page=1&includeDeliveryStats=true",
        &admin(),
        None,
    )
    .await;
    assert_eq!(status, 200);
    let stats = &listed[0]["deliveryStats"];
    assert!(stats["backlog"].as_u64() > Some(0), "{stats}");
    assert!(
        listed[0].get("executionStats").is_none(),
        "each figure on request"
    );
    let (_, _, logto) = call(&p, Method::GET, &format!("/api/hooks/{id}"), &admin(), None).await;
    assert!(
        logto.get("deliveryStats").is_none(),
        "Logto's shape unless asked"
    );

    slow.set_delay(Duration::ZERO);
    let settled = eventually("every event counted", Duration::from_secs(60), async || {
        let o = overview(&p).await;
        let total = |key: &str| -> u64 {
            o["activity"]
                .as_array()
                .unwrap()
                .iter()
                .map(|b| b[key].as_u64().unwrap())
                .sum()
        };
        check(
            (total("routed"), total("delivered"), o),
            |(routed, delivered, _)| *routed == events && *delivered == events,
        )
    })
    .await;
    let roles: Vec<(String, bool, bool)> = settled.2["processes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let flag = |k: &str| p[k].as_bool().unwrap();
            (
                p["role"].as_str().unwrap().to_owned(),
                flag("live"),
                flag("ready"),
            )
        })
        .collect();
    for role in ["producer", "router", "deliverer"] {
        assert!(
            roles.contains(&(role.to_owned(), true, true)),
            "{role} live and ready: {roles:?}"
        );
    }
    let (_, _, shown) = call(
        &p,
        Method::GET,
        &format!("/api/hooks/{id}?includeDeliveryStats=true"),
        &admin(),
        None,
    )
    .await;
    let p99 = shown["deliveryStats"]["p99DurationMs"].as_u64();
    assert_eq!(p99, Some(2_500), "the slow attempts' bucket: {shown}");
    let (status, _, _) = call(&p, Method::GET, "/api/overview", "", None).await;
    assert_eq!(status, 401, "the overview needs the admin token");
    p.stop().await;
}

/// What the browser test needs: Node, playwright-core installed in `tests/browser`
/// (`npm ci` there; `deploy/tools.sh` does it), and Chromium (Debian's `chromium`, or
/// `HOOKBUS_CHROMIUM`). Missing, the test is skipped, except in CI (`CI=true`), where it
/// fails ([`tools::skip_without`]).
fn browser_tools(dir: &Path) -> Option<PathBuf> {
    let chromium = std::env::var_os("HOOKBUS_CHROMIUM")
        .map(PathBuf::from)
        .or_else(|| tools::find("chromium").or_else(|| tools::find("chromium-browser")));
    let node = tools::find("node").is_some();
    let playwright = dir
        .join("node_modules/playwright-core/package.json")
        .exists();
    let missing: Vec<&str> = [
        (chromium.is_none(), "chromium (apt-get install chromium)"),
        (!node, "node (apt-get install nodejs npm)"),
        (!playwright, "playwright-core (npm ci in tests/browser)"),
    ]
    .into_iter()
    .filter_map(|(missing, what)| missing.then_some(what))
    .collect();
    if missing.is_empty() {
        return chromium;
    }
    tools::skip_without("the browser test", &missing);
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_and_the_portal_work_in_a_real_browser() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("browser");
    let Some(chromium) = browser_tools(&dir) else {
        return;
    };
    let p = Pipeline::start("console-browser").await;
    let good = Receiver::start().await;
    good.set_status(200);
    good.add_response_header("content-type", "text/html");
    good.set_body("<script>window.__pwned=1</script>");
    let failing = Receiver::start().await;
    failing.set_status(500);
    // Screenshots go under target/, or where HOOKBUS_SCREENSHOTS says (`$PWD/docs` refreshes
    // the README's; an absolute path, as tests run in tests/).
    let screenshots = std::env::var_os("HOOKBUS_SCREENSHOTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/console-screenshots")
        });
    std::fs::create_dir_all(&screenshots).unwrap();

    let run = tokio::process::Command::new("node")
        .arg(dir.join("console.test.mjs"))
        .current_dir(&dir)
        .env("HOOKBUS_CONSOLE_URL", format!("http://{}", p.router.addr))
        .env("HOOKBUS_ADMIN_TOKEN", ADMIN_TOKEN)
        .env(
            "HOOKBUS_PRODUCER_URL",
            format!("http://{}", p.producer.addr),
        )
        .env("HOOKBUS_INGEST_TOKEN", INGEST_TOKEN)
        .env("HOOKBUS_GOOD_URL", good.url("crm"))
        .env("HOOKBUS_FAILING_URL", failing.url("crm"))
        .env("HOOKBUS_CHROMIUM", &chromium)
        .env("HOOKBUS_SCREENSHOTS", &screenshots)
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(180), run)
        .await
        .expect("the browser test finishes within 3 minutes")
        .expect("node starts");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(
        out.status.success(),
        "browser test failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    println!("{stdout}");

    // What the browser did reached the receivers: the failing endpoint had every attempt of
    // the two events (three each), and the replay brought them to the fixed one.
    assert_eq!(
        failing.received().len(),
        6,
        "two events, three attempts each"
    );
    let dead_ids: std::collections::HashSet<String> = failing
        .received()
        .iter()
        .map(|r| r.header("webhook-id").to_owned())
        .collect();
    assert_eq!(dead_ids.len(), 2);
    assert_eq!(
        good.missing(&dead_ids, Duration::from_secs(5)).await,
        0,
        "replayed to the fixed URL"
    );
    p.stop().await;
}
