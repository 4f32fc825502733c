//! A whole hookbus pipeline started in-process for one test: producer, router and any
//! number of deliverers on free loopback ports, against the real RabbitMQ and Redis, under
//! a prefix of its own. [`Pipeline::stop`] shuts it down and deletes every queue, exchange
//! and Redis key of that prefix; a test that panics or returns early gets the same from
//! the pipeline's drop. It also reads the signals tests wait on instead of sleeping: the
//! services' readiness and `/metrics`, queue depths, and [`Pipeline::wait_settled`].

use std::net::SocketAddr;
use std::time::Duration;

use hookbus_contracts::metric_names as name;
use hookbus_contracts::topology::{QueueType, Topology};
use hookbus_contracts::HookId;
use hookbus_runtime::config::{ActivityConfig, CommonConfig, TargetConfig};
use hookbus_runtime::telemetry::TelemetryConfig;
use lapin::options::QueueDeclareOptions;
use lapin::types::FieldTable;
use serde_json::{json, Value};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::cleanup::on_own_thread;
pub use crate::cleanup::{cleanup, cleanup_on, Cleanup};
use crate::wait::{check, eventually};

pub const ADMIN_TOKEN: &str = "test-admin-token";
pub const INGEST_TOKEN: &str = "test-ingest-token";
pub const AMQP_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";
pub const REDIS_URL: &str = "redis://127.0.0.1:6379";
/// How long the helpers wait for a signal before they fail the test.
pub const WAIT: Duration = Duration::from_secs(20);
/// How long a service gets to stop when its test is over.
const STOP_LIMIT: Duration = Duration::from_secs(15);

/// A prefix no other test or running pipeline uses.
pub fn unique_prefix(test: &str) -> String {
    let id = uuid::Uuid::now_v7().simple().to_string();
    format!("t-{test}-{}", &id[id.len() - 10..])
}

/// Where a pipeline's RabbitMQ and Redis are.
#[derive(Debug, Clone)]
pub struct Servers {
    pub amqp_url: String,
    pub redis_url: String,
    /// The kind of the queues that hold deliveries (`HOOKBUS_HOOK_QUEUE_TYPE`).
    pub hook_queues: QueueType,
}

impl Default for Servers {
    /// The shared servers every test uses unless it restarts one, with the default queues.
    fn default() -> Servers {
        Servers {
            amqp_url: AMQP_URL.into(),
            redis_url: REDIS_URL.into(),
            hook_queues: QueueType::default(),
        }
    }
}

/// The shared settings of a test pipeline.
pub fn common(prefix: &str) -> CommonConfig {
    common_on(prefix, &Servers::default())
}

pub fn common_on(prefix: &str, servers: &Servers) -> CommonConfig {
    let mut common = CommonConfig::with_prefix(prefix);
    common.amqp_url = servers.amqp_url.clone();
    common.redis_url = servers.redis_url.clone();
    common.hook_queue_type = servers.hook_queues;
    common
}

/// The hook targets of a test pipeline: its receivers are plain http on loopback.
pub fn targets() -> TargetConfig {
    TargetConfig {
        allow_private_targets: true,
        allow_http: true,
        egress_proxy: None,
    }
}

pub fn deliverer_config(prefix: &str, schedule: &[Duration]) -> hookbus_deliverer::Config {
    deliverer_config_on(prefix, &Servers::default(), schedule)
}

pub fn deliverer_config_on(
    prefix: &str,
    servers: &Servers,
    schedule: &[Duration],
) -> hookbus_deliverer::Config {
    hookbus_deliverer::Config {
        common: common_on(prefix, servers),
        targets: targets(),
        activity: Default::default(),
        listen: "127.0.0.1:0".into(),
        retry_schedule: schedule.to_vec(),
        attempt_timeout: Duration::from_secs(2),
        hook_in_flight: 64,
        in_flight: 1024,
        prefetch: 2048,
        hook_owners: hookbus_contracts::owners::DEFAULT_OWNERS,
        max_response_bytes: 64 * 1024,
        drain_deadline: Duration::from_secs(10),
        per_hook_metrics: 100,
        auto_disable_after: Duration::from_secs(3 * 24 * 3600),
        send_traceparent: false,
        telemetry: Default::default(),
    }
}

/// A service running in the test's runtime. Dropped, it is told to stop (its shutdown
/// token) and ends in the background; [`Service::stop`] also waits for it to end.
pub struct Service {
    pub addr: SocketAddr,
    shutdown: CancellationToken,
    task: Option<JoinHandle<()>>,
}

impl Service {
    pub async fn stop(mut self) {
        self.stop_in_place().await;
    }

    async fn stop_in_place(&mut self) {
        if let Some(task) = self.begin_stop() {
            let _ = tokio::time::timeout(STOP_LIMIT, task).await;
        }
    }

    /// Tells the service to stop; its task, to wait for, unless that was done already.
    fn begin_stop(&mut self) -> Option<JoinHandle<()>> {
        self.shutdown.cancel();
        self.task.take()
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

async fn spawn<F, Fut, E>(name: &'static str, start: F) -> Service
where
    F: FnOnce(tokio::net::TcpListener, CancellationToken) -> Fut,
    Fut: std::future::Future<Output = Result<(), E>> + Send + 'static,
    E: std::fmt::Display,
{
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().unwrap();
    let shutdown = CancellationToken::new();
    let fut = start(listener, shutdown.clone());
    let task = tokio::spawn(async move {
        if let Err(err) = fut.await {
            panic!("{name} failed: {err}");
        }
    });
    Service {
        addr,
        shutdown,
        task: Some(task),
    }
}

pub async fn start_router(prefix: &str) -> Service {
    start_router_on(prefix, &Servers::default()).await
}

pub async fn start_router_on(prefix: &str, servers: &Servers) -> Service {
    start_router_with(router_config(prefix, servers)).await
}

pub fn router_config(prefix: &str, servers: &Servers) -> hookbus_router::Config {
    hookbus_router::Config {
        common: common_on(prefix, servers),
        targets: targets(),
        activity: Default::default(),
        listen: String::new(),
        admin_token: Some(ADMIN_TOKEN.into()),
        admin_open: false,
        prefetch: 256,
        key_rotation_overlap: Duration::from_secs(3600),
        attempt_timeout: Duration::from_secs(2),
        drain_deadline: Duration::from_secs(10),
        lease: Duration::from_secs(3),
        console: Default::default(),
        telemetry: Default::default(),
        command: None,
    }
}

pub async fn start_router_with(config: hookbus_router::Config) -> Service {
    spawn("router", move |l, s| hookbus_router::run(config, l, s)).await
}

/// A producer's settings for a test: the test ingest token, bodies up to `max_event_bytes`.
pub fn producer_config(
    prefix: &str,
    servers: &Servers,
    max_event_bytes: usize,
) -> hookbus_producer::Config {
    hookbus_producer::Config {
        common: common_on(prefix, servers),
        listen: String::new(),
        ingest_token: Some(INGEST_TOKEN.into()),
        max_event_bytes,
        publish_timeout: Duration::from_secs(5),
        telemetry: Default::default(),
    }
}

pub async fn start_producer(prefix: &str, amqp_url: &str, max_event_bytes: usize) -> Service {
    let servers = Servers {
        amqp_url: amqp_url.into(),
        ..Servers::default()
    };
    start_producer_with(producer_config(prefix, &servers, max_event_bytes)).await
}

pub async fn start_producer_with(config: hookbus_producer::Config) -> Service {
    spawn("producer", move |l, s| hookbus_producer::run(config, l, s)).await
}

pub async fn start_deliverer(config: hookbus_deliverer::Config) -> Service {
    spawn("deliverer", move |l, s| {
        hookbus_deliverer::run(config, l, s)
    })
    .await
}

/// Producer, router and deliverers of one test. Dropped without [`Pipeline::stop`] (the test
/// panicked or returned early), it stops its services, waits for them to end, and deletes
/// its prefix all the same; services a test started beside it are told to stop when they
/// are dropped.
pub struct Pipeline {
    pub prefix: String,
    pub producer: Service,
    pub router: Service,
    pub deliverers: Vec<Service>,
    pub schedule: Vec<Duration>,
    pub servers: Servers,
    pub http: reqwest::Client,
    /// Dropped after the services (fields drop in order), so it deletes what they declared.
    cleanup: Cleanup,
}

impl Pipeline {
    /// Producer, router and one deliverer with a short retry schedule.
    pub async fn start(test: &str) -> Pipeline {
        Pipeline::start_with(
            test,
            &[Duration::from_millis(300), Duration::from_millis(600)],
            1,
        )
        .await
    }

    pub async fn start_with(test: &str, schedule: &[Duration], deliverers: usize) -> Pipeline {
        Pipeline::start_on(test, Servers::default(), schedule, deliverers).await
    }

    /// A pipeline on other servers (a test's private RabbitMQ or Redis).
    pub async fn start_on(
        test: &str,
        servers: Servers,
        schedule: &[Duration],
        deliverers: usize,
    ) -> Pipeline {
        let off = TelemetryConfig::default();
        Pipeline::start_traced(test, servers, schedule, deliverers, &off).await
    }

    /// A pipeline whose services trace as `telemetry` says, the deliverers sending each
    /// attempt's `traceparent` to the endpoint.
    pub async fn start_traced(
        test: &str,
        servers: Servers,
        schedule: &[Duration],
        deliverers: usize,
        telemetry: &TelemetryConfig,
    ) -> Pipeline {
        let activity = ActivityConfig::default();
        Pipeline::start_full(test, servers, schedule, deliverers, telemetry, &activity).await
    }

    /// A pipeline whose router and deliverers take a hook for idle after `idle` without
    /// an event, delivery or retry due (tests of queues deleted and declared again).
    pub async fn start_idle(
        test: &str,
        schedule: &[Duration],
        deliverers: usize,
        idle: Duration,
    ) -> Pipeline {
        let off = TelemetryConfig::default();
        let activity = ActivityConfig { hook_idle: idle };
        Pipeline::start_full(
            test,
            Servers::default(),
            schedule,
            deliverers,
            &off,
            &activity,
        )
        .await
    }

    async fn start_full(
        test: &str,
        servers: Servers,
        schedule: &[Duration],
        deliverers: usize,
        telemetry: &TelemetryConfig,
        activity: &ActivityConfig,
    ) -> Pipeline {
        let prefix = unique_prefix(test);
        let cleanup = Cleanup::on(&servers, &prefix, schedule);
        let mut router = router_config(&prefix, &servers);
        router.telemetry = telemetry.clone();
        router.activity = activity.clone();
        let router = start_router_with(router).await;
        let mut producer = producer_config(&prefix, &servers, 256 * 1024);
        producer.telemetry = telemetry.clone();
        let producer = start_producer_with(producer).await;
        let mut started = Vec::new();
        for _ in 0..deliverers {
            let mut config = deliverer_config_on(&prefix, &servers, schedule);
            config.telemetry = telemetry.clone();
            config.send_traceparent = telemetry.endpoint.is_some();
            config.activity = activity.clone();
            started.push(start_deliverer(config).await);
        }
        let pipeline = Pipeline {
            prefix,
            producer,
            router,
            deliverers: started,
            schedule: schedule.to_vec(),
            servers,
            http: reqwest::Client::new(),
            cleanup,
        };
        for addr in pipeline.addrs() {
            pipeline.wait_ready(addr).await;
        }
        pipeline
    }

    /// The producer's, the router's and every deliverer's address.
    pub fn addrs(&self) -> Vec<SocketAddr> {
        let mut addrs = vec![self.producer.addr, self.router.addr];
        addrs.extend(self.deliverers.iter().map(|d| d.addr));
        addrs
    }

    /// Waits until the service at `addr` answers `/readyz` with 200.
    pub async fn wait_ready(&self, addr: SocketAddr) {
        // Generous: a private RabbitMQ node that has just opened its port may take a while
        // more to declare the first quorum queues on a busy machine (seen once at 20 s).
        let what = format!("{addr} to be ready");
        eventually(what, Duration::from_secs(60), async || {
            readiness(&self.http, addr).await.map(drop)
        })
        .await;
    }

    pub fn topology(&self) -> Topology {
        Topology::new(&self.prefix)
    }

    /// `POST /api/hooks` on the router; returns the status and the body.
    pub async fn post_hook(&self, body: Value) -> (u16, Value) {
        admin(
            &self.http,
            self.router.addr,
            reqwest::Method::POST,
            "/api/hooks",
            Some(body),
        )
        .await
    }

    /// Creates a hook and waits until the deliverers consume its queue.
    pub async fn create_hook(&self, events: &[&str], url: &str) -> Value {
        let (status, hook) = self
            .post_hook(
                serde_json::json!({"name": "test", "events": events, "config": {"url": url}}),
            )
            .await;
        assert_eq!(status, 201, "{hook}");
        hook
    }

    /// Waits until every deliverer owns `n` hooks and the router knows at least
    /// `n` hooks (hooks are created in order, so the first `n` are among them).
    pub async fn wait_hooks(&self, n: usize) {
        self.wait_consumers(n as f64, &format!("own {n} hooks"))
            .await;
        let what = format!("the router to know at least {n} hooks");
        eventually(what, WAIT, async || {
            check(self.router_metric("hookbus_hooks").await, |h| {
                *h >= n as f64
            })
        })
        .await;
    }

    /// Makes `hook` active with its queue declared, as a router does for an event routed to
    /// it: for tests that publish to the queue, or set a policy on it, themselves.
    pub async fn activate(&self, hook: &HookId) {
        use hookbus_runtime::declare::Declare;
        let conn = hookbus_runtime::broker::connect(&self.servers.amqp_url, "hookbus-test")
            .await
            .expect("the broker");
        let ch = conn.create_channel().await.expect("a channel");
        self.topology()
            .with_delivery_queues(self.servers.hook_queues)
            .declare_hook(&ch, hook)
            .await
            .expect("the hook's queue declared");
        let _ = conn.close(200, "".into()).await;
        let keys = hookbus_contracts::keys::RedisKeys::new(&self.prefix);
        let store = hookbus_runtime::store::HookStore::new(&self.servers.redis_url, keys.clone())
            .expect("the hook store");
        let idle =
            hookbus_contracts::activity::Idle::new(hookbus_contracts::activity::DEFAULT_IDLE)
                .expect("activity on");
        hookbus_runtime::activity::HookActivity::new(store.pool().clone(), keys, idle)
            .hold(&[(hook, Duration::ZERO)])
            .await
            .expect("the hook's activity written");
    }

    /// Waits until every deliverer has loaded the hook store as it is now (a rotated key, a
    /// new URL), which no metric states: a probe hook (subscribed to
    /// `OrganizationScope.Deleted`, which must not be published meanwhile) is created, which
    /// each deliverer shows by owning it, then deleted, which each shows by dropping it. Whatever was stored before the probe is loaded by then.
    pub async fn wait_deliverers_current(&self) {
        let (_, hooks) = self.admin(reqwest::Method::GET, "/api/hooks", None).await;
        let enabled = hooks
            .as_array()
            .expect("the hooks list")
            .iter()
            .filter(|h| h["enabled"] == true)
            .count() as f64;
        let (status, probe) = self
            .post_hook(
                json!({"name": "probe", "events": ["OrganizationScope.Deleted"],
                "config": {"url": "http://127.0.0.1:9/probe"}}),
            )
            .await;
        assert_eq!(status, 201, "the probe hook: {probe}");
        self.wait_consumers(enabled + 1.0, "own the probe hook")
            .await;
        let path = format!("/api/hooks/{}", hook_id(&probe));
        let (status, _) = self.admin(reqwest::Method::DELETE, &path, None).await;
        assert_eq!(status, 204, "deleting the probe hook");
        self.wait_consumers(enabled, "drop the probe hook").await;
    }

    /// Waits until the deliverers own `n` enabled hooks: each deliverer all of them while
    /// there are no more deliverers than an idle hook has owners, and beyond that `n` times
    /// the owners in all (ARCHITECTURE.md, "Who consumes what"). Owning is consuming once
    /// the hook is active: its first event starts its consumers.
    async fn wait_consumers(&self, n: f64, doing: &str) {
        let owners = hookbus_contracts::owners::DEFAULT_OWNERS;
        let each = self.deliverers.len() <= owners;
        eventually(format!("the deliverers to {doing}"), WAIT, async || {
            let mut counts = Vec::new();
            for d in &self.deliverers {
                counts.push(metric(&self.http, d.addr, name::HOOKS_OWNED).await);
            }
            check(counts, |c| {
                if each {
                    c.iter().all(|k| *k == Some(n))
                } else {
                    c.iter().map(|k| k.unwrap_or(0.0)).sum::<f64>() == n * owners as f64
                }
            })
        })
        .await;
    }

    /// Waits until the pipeline has done all it will do with what it was given: the router
    /// has settled (routed, dropped as unwanted, or parked) every event the producer
    /// published, and the deliverers have brought every delivery the router published to an
    /// end (delivered or dead-lettered), with no attempt under way. What a receiver holds
    /// then is all it will get; a test asserts "nothing else arrived" after this. Events
    /// published another way than through the producer, or dead letters replayed, are not
    /// counted: such a test waits for its own signal.
    pub async fn wait_settled(&self) {
        eventually("the pipeline to settle every event", WAIT, async || {
            let settled = self.settled().await;
            check(settled, Settled::is_done)
        })
        .await;
    }

    /// What the producer, the router and the deliverers have counted so far.
    pub async fn settled(&self) -> Settled {
        let router = async |outcome: &str| {
            let name = format!("hookbus_router_events_total{{outcome=\"{outcome}\"}}");
            self.router_metric(&name).await
        };
        let ended = async |outcome: &str| {
            let name = format!("hookbus_deliveries_total{{outcome=\"{outcome}\"}}");
            self.deliverers_metric(&name).await
        };
        Settled {
            published: metric(
                &self.http,
                self.producer.addr,
                "hookbus_events_published_total",
            )
            .await
            .unwrap_or(0.0),
            routed: router("routed").await + router("unmatched").await + router("parked").await,
            deliveries: self
                .router_metric("hookbus_router_deliveries_published_total")
                .await,
            ended: ended("delivered").await + ended("dead_lettered").await,
            in_flight: self.deliverers_metric("hookbus_deliveries_in_flight").await,
        }
    }

    /// A metric of the router (summed over its labels; 0 if it has no sample).
    pub async fn router_metric(&self, name: &str) -> f64 {
        metric(&self.http, self.router.addr, name)
            .await
            .unwrap_or(0.0)
    }

    /// A metric summed over the pipeline's deliverers (0 where one has no sample).
    pub async fn deliverers_metric(&self, name: &str) -> f64 {
        let mut sum = 0.0;
        for d in &self.deliverers {
            sum += metric(&self.http, d.addr, name).await.unwrap_or(0.0);
        }
        sum
    }

    /// One admin API call on the pipeline's router.
    pub async fn admin(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        admin(&self.http, self.router.addr, method, path, body).await
    }

    /// `POST /api/events` on the producer.
    pub async fn ingest(&self, body: Value) -> (u16, Value) {
        ingest_raw(
            &self.http,
            self.producer.addr,
            Some(INGEST_TOKEN),
            serde_json::to_vec(&body).unwrap(),
        )
        .await
    }

    /// Stops the services, waiting for each, then deletes the prefix.
    pub async fn stop(mut self) {
        for d in &mut self.deliverers {
            d.stop_in_place().await;
        }
        self.producer.stop_in_place().await;
        self.router.stop_in_place().await;
        self.cleanup.run().await;
    }
}

impl Drop for Pipeline {
    /// The test did not call [`Pipeline::stop`]: stop the services and wait for them (on a
    /// thread of its own, while the test's runtime runs them) so that none declares again
    /// what the cleanup deletes; then the `cleanup` field's own drop deletes the prefix.
    fn drop(&mut self) {
        let mut tasks: Vec<JoinHandle<()>> = self
            .deliverers
            .iter_mut()
            .chain([&mut self.producer, &mut self.router])
            .filter_map(Service::begin_stop)
            .collect();
        // A current-thread runtime runs nothing while its test unwinds: no use waiting.
        let runs_meanwhile = tokio::runtime::Handle::try_current()
            .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
        if tasks.is_empty() || !runs_meanwhile {
            return;
        }
        on_own_thread(async move {
            let all = futures::future::join_all(tasks.drain(..));
            let _ = tokio::time::timeout(STOP_LIMIT, all).await;
        });
    }
}

/// Counts from the producer, the router and the deliverers: see [`Pipeline::wait_settled`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Settled {
    /// Events the producer published.
    pub published: f64,
    /// Events the router settled: routed, unmatched or parked.
    pub routed: f64,
    /// Deliveries the router published.
    pub deliveries: f64,
    /// Deliveries that ended: delivered or dead-lettered.
    pub ended: f64,
    /// Attempts under way.
    pub in_flight: f64,
}

impl Settled {
    pub fn is_done(&self) -> bool {
        self.routed == self.published && self.ended == self.deliveries && self.in_flight == 0.0
    }
}

/// `/readyz` of the service at `addr`: `Ok` when it answers 200, else what it answered.
pub async fn readiness(http: &reqwest::Client, addr: SocketAddr) -> Result<Value, (u16, Value)> {
    match http.get(format!("http://{addr}/readyz")).send().await {
        Ok(res) => {
            let status = res.status().as_u16();
            let body = res.json().await.unwrap_or(Value::Null);
            if status == 200 {
                Ok(body)
            } else {
                Err((status, body))
            }
        }
        Err(err) => Err((0, Value::String(err.to_string()))),
    }
}

/// One admin API call with the test token on the router at `addr`: the status and the body
/// (`null` when it is not JSON).
pub async fn admin(
    http: &reqwest::Client,
    addr: SocketAddr,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = http
        .request(method, format!("http://{addr}{path}"))
        .bearer_auth(ADMIN_TOKEN);
    if let Some(body) = body {
        req = req.json(&body);
    }
    let res = req.send().await.expect("router answers");
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

pub async fn ingest_raw(
    http: &reqwest::Client,
    addr: SocketAddr,
    token: Option<&str>,
    body: Vec<u8>,
) -> (u16, Value) {
    let mut req = http
        .post(format!("http://{addr}/api/events"))
        .header("content-type", "application/json")
        .body(body);
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    let res = req.send().await.expect("producer answers");
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

/// Checks that `addr` answers a path no route serves with `404` and `path` (a route that
/// does not take `PUT`) with `405` and its `Allow` header, both with a JSON error body.
pub async fn assert_routing_errors_are_json(
    http: &reqwest::Client,
    addr: SocketAddr,
    path: &str,
    token: &str,
) {
    let cases = [
        (
            reqwest::Method::GET,
            "/api/no-such-route",
            404,
            "route.not_found",
        ),
        (reqwest::Method::PUT, path, 405, "route.method_not_allowed"),
    ];
    for (method, path, status, code) in cases {
        let res = http
            .request(method.clone(), format!("http://{addr}{path}"))
            .bearer_auth(token)
            .send()
            .await
            .expect("the service answers");
        assert_eq!(res.status().as_u16(), status, "{method} {path}");
        if status == 405 {
            assert!(res.headers().contains_key("allow"), "{method} {path}");
        }
        let body: Value = res.json().await.expect("a JSON body");
        assert_eq!(body["code"], code, "{method} {path}");
        assert!(body["message"].is_string(), "{body}");
    }
}

/// Reads one unlabelled sample (or the sum over labels) from a `/metrics` page.
pub async fn metric(http: &reqwest::Client, addr: SocketAddr, name: &str) -> Option<f64> {
    let text = http
        .get(format!("http://{addr}/metrics"))
        .send()
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    let values: Vec<f64> = text
        .lines()
        .filter(|l| {
            l.starts_with(name)
                && (l[name.len()..].starts_with(' ') || l[name.len()..].starts_with('{'))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse().ok())
        .collect();
    (!values.is_empty()).then(|| values.iter().sum())
}

/// Messages ready in a queue (a passive declare), or `None` if it does not exist.
pub async fn queue_depth(queue: &str) -> Option<u32> {
    let conn = hookbus_runtime::broker::connect(AMQP_URL, "hookbus-test")
        .await
        .ok()?;
    let ch = conn.create_channel().await.ok()?;
    let opts = QueueDeclareOptions {
        passive: true,
        ..Default::default()
    };
    let depth = ch
        .queue_declare(queue.into(), opts, FieldTable::default())
        .await
        .ok()
        .map(|q| q.message_count());
    let _ = conn.close(200, "".into()).await;
    depth
}

/// Waits until `queue` holds exactly `n` ready messages; fails the test after `within`.
pub async fn wait_depth(queue: &str, n: u32, within: Duration) {
    eventually(
        format!("{queue} to hold {n} messages"),
        within,
        async || check(queue_depth(queue).await, |d| *d == Some(n)),
    )
    .await;
}

/// Takes one message off a queue (acked): its body and its `x-hookbus-reason` header.
pub async fn take_one(queue: &str) -> Option<(Vec<u8>, Option<String>)> {
    use hookbus_runtime::broker;
    let conn = broker::connect(AMQP_URL, "hookbus-test").await.ok()?;
    let ch = conn.create_channel().await.ok()?;
    let msg = ch
        .basic_get(
            queue.into(),
            lapin::options::BasicGetOptions { no_ack: true },
        )
        .await
        .ok()??;
    let reason = broker::header(&msg.delivery.properties, "x-hookbus-reason");
    let _ = conn.close(200, "".into()).await;
    Some((msg.delivery.data.clone(), reason))
}

/// The id of a hook as the admin API answered it.
pub fn hook_id(hook: &Value) -> HookId {
    HookId::parse(hook["id"].as_str().expect("a hook has an id")).expect("a valid hook id")
}
