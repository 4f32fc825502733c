//! A whole hookbus pipeline started in-process for one test: producer, router and any
//! number of deliverers on free loopback ports, against the real RabbitMQ and Redis, under
//! a prefix of its own. [`Pipeline::stop`] shuts it down and deletes every queue, exchange
//! and Redis key of that prefix.

use std::net::SocketAddr;
use std::time::Duration;

use deadpool_redis::redis::{self, AsyncCommands};
use hookbus_contracts::topology::Topology;
use hookbus_contracts::HookId;
use hookbus_runtime::config::{CommonConfig, TargetConfig};
use lapin::options::{ExchangeDeleteOptions, QueueDeclareOptions, QueueDeleteOptions};
use lapin::types::FieldTable;
use serde_json::Value;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub const ADMIN_TOKEN: &str = "test-admin-token";
pub const INGEST_TOKEN: &str = "test-ingest-token";
pub const AMQP_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";
pub const REDIS_URL: &str = "redis://127.0.0.1:6379";

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
}

impl Default for Servers {
    /// The shared servers every test uses unless it restarts one.
    fn default() -> Servers {
        Servers {
            amqp_url: AMQP_URL.into(),
            redis_url: REDIS_URL.into(),
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
        listen: "127.0.0.1:0".into(),
        retry_schedule: schedule.to_vec(),
        attempt_timeout: Duration::from_secs(2),
        hook_in_flight: 64,
        in_flight: 1024,
        max_response_bytes: 64 * 1024,
        drain_deadline: Duration::from_secs(10),
        per_hook_metrics: 100,
        auto_disable_after: Duration::from_secs(3 * 24 * 3600),
    }
}

pub struct Service {
    pub addr: SocketAddr,
    shutdown: CancellationToken,
    task: JoinHandle<()>,
}

impl Service {
    pub async fn stop(self) {
        self.shutdown.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(15), self.task).await;
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
        task,
    }
}

pub async fn start_router(prefix: &str) -> Service {
    start_router_on(prefix, &Servers::default()).await
}

pub async fn start_router_on(prefix: &str, servers: &Servers) -> Service {
    let config = hookbus_router::Config {
        common: common_on(prefix, servers),
        targets: targets(),
        listen: String::new(),
        admin_token: Some(ADMIN_TOKEN.into()),
        admin_open: false,
        prefetch: 256,
        key_rotation_overlap: Duration::from_secs(3600),
        attempt_timeout: Duration::from_secs(2),
        drain_deadline: Duration::from_secs(10),
        lease: Duration::from_secs(3),
        console: Default::default(),
        command: None,
    };
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

pub struct Pipeline {
    pub prefix: String,
    pub producer: Service,
    pub router: Service,
    pub deliverers: Vec<Service>,
    pub schedule: Vec<Duration>,
    pub servers: Servers,
    pub http: reqwest::Client,
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
        let prefix = unique_prefix(test);
        let router = start_router_on(&prefix, &servers).await;
        let producer = start_producer(&prefix, &servers.amqp_url, 256 * 1024).await;
        let mut started = Vec::new();
        for _ in 0..deliverers {
            started.push(start_deliverer(deliverer_config_on(&prefix, &servers, schedule)).await);
        }
        let pipeline = Pipeline {
            prefix,
            producer,
            router,
            deliverers: started,
            schedule: schedule.to_vec(),
            servers,
            http: reqwest::Client::new(),
        };
        for addr in pipeline.addrs() {
            pipeline.wait_ready(addr).await;
        }
        pipeline
    }

    fn addrs(&self) -> Vec<SocketAddr> {
        let mut addrs = vec![self.producer.addr, self.router.addr];
        addrs.extend(self.deliverers.iter().map(|d| d.addr));
        addrs
    }

    pub async fn wait_ready(&self, addr: SocketAddr) {
        // Generous: a private RabbitMQ node that has just opened its port may take a while
        // more to declare the first quorum queues on a busy machine (seen once at 20 s).
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            let ok = self
                .http
                .get(format!("http://{addr}/readyz"))
                .send()
                .await
                .is_ok_and(|r| r.status() == 200);
            if ok {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{addr} never became ready"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
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

    /// Waits until every deliverer consumes `n` hook queues and the router knows at least
    /// `n` hooks (hooks are created in order, so the first `n` are among them).
    pub async fn wait_hooks(&self, n: usize) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        for addr in self.deliverers.iter().map(|d| d.addr) {
            loop {
                if metric(&self.http, addr, "hookbus_deliverer_hook_consumers").await
                    == Some(n as f64)
                {
                    break;
                }
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "deliverer {addr} never consumed {n} hooks"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        loop {
            if metric(&self.http, self.router.addr, "hookbus_hooks").await >= Some(n as f64) {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "router never saw {n} hooks"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
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

    pub async fn stop(self) {
        let prefix = self.prefix.clone();
        let schedule = self.schedule.clone();
        let servers = self.servers.clone();
        for d in self.deliverers {
            d.stop().await;
        }
        self.producer.stop().await;
        self.router.stop().await;
        cleanup_on(&servers, &prefix, &schedule).await;
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
    let deadline = tokio::time::Instant::now() + within;
    while queue_depth(queue).await != Some(n) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{queue} never held {n} messages"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
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

/// Deletes every queue, exchange and Redis key of `prefix` on the shared servers.
pub async fn cleanup(prefix: &str, schedule: &[Duration]) {
    cleanup_on(&Servers::default(), prefix, schedule).await
}

pub async fn cleanup_on(servers: &Servers, prefix: &str, schedule: &[Duration]) {
    let topology = Topology::new(prefix);
    let keys = hookbus_contracts::keys::RedisKeys::new(prefix);
    let pool = deadpool_redis::Config::from_url(servers.redis_url.as_str())
        .create_pool(Some(deadpool_redis::Runtime::Tokio1))
        .unwrap();
    let Ok(mut redis) = pool.get().await else {
        return;
    };
    let mut ids: Vec<String> = redis
        .zrange(keys.hooks_index(), 0, -1)
        .await
        .unwrap_or_default();
    // Hooks deleted in the last seconds, whose queues a stopped router did not remove.
    let deleted: Vec<String> = redis
        .zrange(keys.deleted_hooks(), 0, -1)
        .await
        .unwrap_or_default();
    ids.extend(deleted);
    let Ok(conn) =
        hookbus_runtime::broker::connect(&servers.amqp_url, "hookbus-test-cleanup").await
    else {
        return;
    };
    let ch = conn.create_channel().await.unwrap();
    let mut queues = vec![topology.events_queue(), topology.events_dead_queue()];
    for id in ids.iter().filter_map(|id| HookId::parse(id)) {
        queues.push(topology.hook_queue(&id));
        queues.push(topology.dead_queue(&id));
    }
    let mut exchanges = vec![topology.events_exchange(), topology.deliveries_exchange()];
    for delay in schedule {
        queues.push(topology.retry_tier(*delay));
        exchanges.push(topology.retry_tier(*delay));
    }
    for q in queues {
        let _ = ch
            .queue_delete(q.as_str().into(), QueueDeleteOptions::default())
            .await;
    }
    for e in exchanges {
        let _ = ch
            .exchange_delete(e.as_str().into(), ExchangeDeleteOptions::default())
            .await;
    }
    let _ = conn.close(200, "".into()).await;
    let all: Vec<String> = redis::cmd("KEYS")
        .arg(keys.all_pattern())
        .query_async(&mut *redis)
        .await
        .unwrap_or_default();
    if !all.is_empty() {
        let _: Result<(), _> = redis.del(all).await;
    }
}
