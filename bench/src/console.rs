//! The console at scale (`bench console`): with 10,000 hooks configured, how long the admin
//! API takes to answer each request the console's pages make, measured against a router
//! process of its own. The pages themselves render at most one page of hooks (20 rows), so
//! what can grow with the hooks is these answers.
//!
//! Hooks are written straight into the store (as `bench` does for the scale of
//! configuration), each with its own name and URL so the search has something to find; one
//! in a hundred has delivery stats, as if it had had traffic.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};
use hookbus_contracts::logs::{self, HookRequest, LogPayload, LogRecord};
use hookbus_contracts::payload::now_ms;
use hookbus_runtime::logs::DeliveryLogs;
use hookbus_tests::pipeline::ADMIN_TOKEN;

use crate::machine::Machine;
use crate::rabbitmqctl::Node;
use crate::report::console::{ConsoleReport, SECTION};
use crate::scale::Configured;

/// One request the console makes, and how long it took.
pub struct Timed {
    pub what: &'static str,
    pub path: String,
    /// Answer times of every repeat, sorted.
    pub times: Vec<Duration>,
    pub bytes: usize,
}

impl Timed {
    pub fn quantile(&self, q: f64) -> Duration {
        let i = ((self.times.len() as f64 - 1.0) * q).round() as usize;
        self.times[i]
    }
}

/// Stores `hooks` hooks, starts a router process and times each console request `repeats`
/// times; prints the section and writes it into the report at `out`.
pub async fn run(hooks: usize, repeats: usize, out: &Path) -> Result<()> {
    let mut configured = Configured::new("bench-console")?;
    let result = measure(&mut configured, hooks, repeats).await;
    configured.cleanup(true).await;
    let rows = result?;
    let machine = Machine::detect(Node::SHARED).await;
    let section = ConsoleReport {
        machine: &machine,
        hooks,
        repeats,
        rows: &rows,
    }
    .section()?;
    println!("\n{section}");
    let document =
        std::fs::read_to_string(out).with_context(|| format!("reading {}", out.display()))?;
    std::fs::write(out, SECTION.place(&document, &section))
        .with_context(|| format!("writing {}", out.display()))?;
    println!("written to {}", out.display());
    Ok(())
}

async fn measure(configured: &mut Configured, hooks: usize, repeats: usize) -> Result<Vec<Timed>> {
    println!("storing {hooks} hooks");
    configured
        .store_idle_as(hooks, |i, hook| {
            hook.name = format!("customer {i:05}");
            hook.config.url = format!("https://customer-{i:05}.example.test/hooks");
        })
        .await?;
    let all = configured.store.load_all().await?;
    let logs = DeliveryLogs::new(
        configured.store.pool().clone(),
        configured.store.keys().clone(),
    );
    let active: Vec<LogRecord> = all.iter().step_by(100).map(record).collect();
    logs.record_all(&active).await?;
    let router = configured.start("router").await?;
    let result = async {
        configured.wait_for(&router, "hookbus_hooks", hooks).await?;
        let one = &all[all.len() / 2].id;
        let last_page = hooks.div_ceil(20);
        let figures = "includeExecutionStats=true&includeDeliveryStats=true";
        let requests: Vec<(&'static str, String)> = vec![
            (
                "Hooks, first page",
                format!("/api/hooks?page=1&page_size=20&{figures}"),
            ),
            (
                "Hooks, last page",
                format!("/api/hooks?page={last_page}&page_size=20&{figures}"),
            ),
            (
                "Hooks, search by name",
                format!("/api/hooks?q=customer%2004242&page=1&page_size=20&{figures}"),
            ),
            (
                "Hooks, search by URL, many matches",
                format!("/api/hooks?q=example.test&page=1&page_size=20&{figures}"),
            ),
            (
                "Overview, 24 h figures",
                "/api/hooks?page=1&page_size=100&includeExecutionStats=true".to_owned(),
            ),
            ("Overview, activity and backlog", "/api/overview".to_owned()),
            ("A hook", format!("/api/hooks/{one}?{figures}")),
            (
                "A hook, recent requests",
                format!("/api/hooks/{one}/recent-logs?page=1&page_size=100"),
            ),
        ];
        let mut rows = Vec::new();
        for (what, path) in requests {
            rows.push(time(configured, router.addr, what, path, repeats).await?);
        }
        anyhow::Ok(rows)
    }
    .await;
    router.stop().await;
    result
}

async fn time(
    configured: &Configured,
    addr: std::net::SocketAddr,
    what: &'static str,
    path: String,
    repeats: usize,
) -> Result<Timed> {
    let url = format!("http://{addr}{path}");
    let mut times = Vec::with_capacity(repeats);
    let mut bytes = 0;
    // One untimed call warms the connection and the router's pools.
    for i in 0..=repeats {
        let started = Instant::now();
        let res = configured
            .http
            .get(&url)
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await?;
        if !res.status().is_success() {
            return Err(anyhow!("{path}: {}", res.status()));
        }
        bytes = res.bytes().await?.len();
        if i > 0 {
            times.push(started.elapsed());
        }
    }
    times.sort();
    Ok(Timed {
        what,
        path,
        times,
        bytes,
    })
}

/// One successful attempt of `hook`, for its 24 h figures.
fn record(hook: &hookbus_contracts::Hook) -> LogRecord {
    let key = "TriggerHook.User.Created".to_owned();
    LogRecord {
        id: uuid::Uuid::now_v7().to_string(),
        key: key.clone(),
        payload: LogPayload {
            key,
            result: "Success".into(),
            hook_id: hook.id.clone(),
            hook_request: HookRequest {
                body: logs::logged_body(br#"{"event":"User.Created"}"#),
            },
            response: None,
            error: None,
            webhook_id: uuid::Uuid::now_v7().to_string(),
            attempt: 1,
            duration_ms: 40,
        },
        created_at: now_ms(),
    }
}
