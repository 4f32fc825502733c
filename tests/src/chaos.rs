//! The chaos soak: hookbus under a steady stream of events while its parts are killed, then
//! a reconciliation of every accepted event id against what each hook's endpoint got. It
//! exists so that "at least once, through any one failure" is measured on the real thing
//! (a three-node RabbitMQ cluster, a Redis with AOF, routers and deliverers in processes of
//! their own, `kill -9`), by one piece of code that both the short integration test
//! (`tests/tests/it/chaos.rs`, which asserts nothing is lost) and the long run
//! (`bench chaos`, which writes `docs/RELIABILITY.md`'s figures) run.
//!
//! Events are published at a steady total rate, half through the HTTP ingest (in this
//! process) and half through the Rust SDK; a publish that fails is tried again until it is
//! accepted, as an auth service would, and only accepted ids count. The endpoints are one
//! receiver of its own here ([`Endpoints`]) that keeps, per hook, only what reconciling
//! needs (first arrival and count per id), where `Receiver` keeps whole requests: a million
//! events to four hooks would not fit.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use hookbus_contracts::topology::QueueType;
use hookbus_contracts::EventName;
use hookbus_producer::Publisher;
use serde::Serialize;
use serde_json::json;
use tokio::process::Child;

use crate::cluster::RabbitCluster;
use crate::pipeline::{self, Servers, Service, INGEST_TOKEN};
use crate::servers::{spare_port, RedisServer};
use crate::service;

/// The one event every hook subscribes to.
const EVENT: &str = "User.Created";
/// Publishes under way at once, at most (each retried until accepted).
const IN_FLIGHT: usize = 512;
/// How long a client waits before trying a refused publish again.
const CLIENT_RETRY: Duration = Duration::from_millis(250);
/// How often a fault's recovery is probed (ingest and every `/readyz`).
const PROBE_EVERY: Duration = Duration::from_millis(100);
/// A fault's recovery is watched at least this long after it was healed.
const SETTLE: Duration = Duration::from_secs(3);
/// A fault not recovered from within this is recorded as not recovered.
const RECOVERY_LIMIT: Duration = Duration::from_secs(180);
/// The deliverers' retry schedule: short, so that retries and recovery happen in the run.
pub const RETRY_SCHEDULE: &str = "1s,2s,5s,10s,10s,10s,10s,10s,10s,10s";

/// What is done to the system under load.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Fault {
    /// `kill -9` of a random router, started again after `Plan::process_down`.
    RouterKill,
    /// `kill -9` of a random deliverer, started again after `Plan::process_down`.
    DelivererKill,
    /// `kill -9` of a random broker node, started again after `Plan::node_down`.
    NodeKill,
    /// `kill -9` of a random broker node, kept down for `Plan::long_down`.
    NodeDownLong,
    /// Redis killed and started again from its append-only file.
    RedisRestart,
}

impl Fault {
    pub fn parse(s: &str) -> Result<Fault, String> {
        Ok(match s {
            "router-kill" => Fault::RouterKill,
            "deliverer-kill" => Fault::DelivererKill,
            "node-kill" => Fault::NodeKill,
            "node-down-long" => Fault::NodeDownLong,
            "redis-restart" => Fault::RedisRestart,
            other => {
                return Err(format!(
                    "`{other}`: one of router-kill, deliverer-kill, node-kill, node-down-long, redis-restart"
                ))
            }
        })
    }
}

/// How the services' processes are started: `program args… <role>` (`hookbus-svc` in the
/// tests, `bench service` in the benchmark).
#[derive(Debug, Clone)]
pub struct Launcher {
    pub program: PathBuf,
    pub args: Vec<String>,
}

/// What the soak's caller sees while it runs.
#[derive(Debug, Clone)]
pub struct Progress {
    pub accepted: u64,
    pub events: u64,
    pub phase: String,
}

pub type OnProgress = Arc<dyn Fn(&Progress) + Send + Sync>;

/// One soak: how much, how fast, which faults (spread evenly over the publishing period, one
/// after the other), and how long each lasts.
pub struct Plan {
    pub events: usize,
    /// Events per second, both publishers together.
    pub rate: f64,
    pub faults: Vec<Fault>,
    pub routers: usize,
    pub deliverers: usize,
    pub launcher: Launcher,
    /// Where each service process's log (stderr) is written.
    pub log_dir: PathBuf,
    pub process_down: Duration,
    pub node_down: Duration,
    pub long_down: Duration,
    /// How long the slow hook's endpoint takes to answer.
    pub slow_delay: Duration,
    /// When (after the first publish) the failing hook's endpoint starts answering 500, and
    /// for how long.
    pub failing: (Duration, Duration),
    /// How long, after the last publish and the last fault, every delivery may take.
    pub drain: Duration,
    pub seed: u64,
    pub progress: Option<OnProgress>,
}

/// The hooks: two that answer at once, one slow, one failing for a while.
const HOOKS: [&str; 4] = ["normal-1", "normal-2", "slow", "failing"];
const SLOW: usize = 2;
const FAILING: usize = 3;

/// The reconciliation of one hook.
#[derive(Debug, Clone, Serialize)]
pub struct HookFigures {
    pub hook: &'static str,
    /// Accepted events it did not get.
    pub lost: usize,
    /// Deliveries answered 2xx, duplicates included.
    pub deliveries: u64,
    /// Deliveries beyond the first of an id.
    pub duplicates: u64,
    /// Requests answered 500 (the failing hook).
    pub failed_attempts: u64,
    pub late_p50_ms: Option<f64>,
    pub late_p99_ms: Option<f64>,
    /// The first lost ids, to look for in the logs.
    pub lost_ids: Vec<String>,
}

/// One fault as it happened.
#[derive(Debug, Clone, Serialize)]
pub struct FaultRecord {
    pub kind: Fault,
    pub target: String,
    /// Seconds after the first publish.
    pub at_s: f64,
    /// How long the target was down (until its restart was begun).
    pub down_s: f64,
    /// From the kill to the first ingest `202` after the last refused one (0 if none was
    /// refused); `None`: not within the limit.
    pub ingest_back_s: Option<f64>,
    /// From the kill to the moment after which every process answered `/readyz` 200.
    pub ready_back_s: Option<f64>,
    /// Ingest probes refused during the fault.
    pub ingest_refused: u64,
    /// Second and later copies the endpoints received after this fault and before the
    /// next: what the fault cost in duplicates, by time (a backlog can carry some of one
    /// fault's into the next's).
    pub duplicates_after: u64,
}

/// What a soak measured.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub events: usize,
    pub rate: f64,
    pub accepted: u64,
    pub accepted_via_ingest: u64,
    pub accepted_via_sdk: u64,
    /// Publishes refused (or timed out) and tried again by the client.
    pub publish_retries: u64,
    /// From the first publish to the last accepted one of the `events` (probes aside).
    pub publish_s: f64,
    /// The whole run: cluster start, publishing, faults, drain.
    pub run_s: f64,
    pub lost: usize,
    pub deliveries: u64,
    pub duplicates: u64,
    pub duplicate_pct: f64,
    /// Duplicates received before the first fault: those no fault explains.
    pub duplicates_before_faults: u64,
    /// Accepted → first 2xx at the endpoint, over the hooks that always answer 2xx, for
    /// events accepted while a fault was on (from the kill to its recovery) and otherwise.
    pub late_p99_fault_ms: Option<f64>,
    pub late_p99_calm_ms: Option<f64>,
    pub late_p50_calm_ms: Option<f64>,
    pub hooks: Vec<HookFigures>,
    pub faults: Vec<FaultRecord>,
    pub seed: u64,
}

// ---- the endpoints ----------------------------------------------------------------------

#[derive(Default)]
struct Seen {
    first: Option<Instant>,
    count: u32,
}

#[derive(Default)]
struct HookTally {
    seen: Mutex<HashMap<u128, Seen>>,
    /// When each second or later copy of an id arrived.
    repeats: Mutex<Vec<Instant>>,
    deliveries: AtomicU64,
    failed: AtomicU64,
    status: AtomicU16,
    delay_ms: AtomicU64,
}

/// The hooks' endpoints: `POST /{hook index}`, answering each hook's status after its delay,
/// and counting every `webhook-id` answered 2xx.
pub struct Endpoints {
    pub addr: SocketAddr,
    hooks: Arc<Vec<HookTally>>,
    task: tokio::task::JoinHandle<()>,
}

impl Endpoints {
    async fn start(n: usize) -> Endpoints {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a free port");
        let addr = listener.local_addr().unwrap();
        let hooks: Arc<Vec<HookTally>> = Arc::new((0..n).map(|_| HookTally::default()).collect());
        for h in hooks.iter() {
            h.status.store(204, Ordering::Relaxed);
        }
        let app = axum::Router::new()
            .route("/{hook}", post(answer))
            .with_state(hooks.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Endpoints { addr, hooks, task }
    }

    fn url(&self, hook: usize) -> String {
        format!("http://{}/{hook}", self.addr)
    }

    fn deliveries(&self) -> u64 {
        self.hooks
            .iter()
            .map(|h| h.deliveries.load(Ordering::Relaxed))
            .sum()
    }

    /// How many of `ids` hook `hook` has not had answered 2xx.
    fn missing(&self, hook: usize, ids: &[(u128, Instant)]) -> usize {
        let seen = self.hooks[hook].seen.lock().unwrap();
        if seen.len() < ids.len() {
            // Cheap first: it cannot have them all.
            return ids.len() - seen.len();
        }
        ids.iter().filter(|(id, _)| !seen.contains_key(id)).count()
    }
}

impl Drop for Endpoints {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn answer(
    State(hooks): State<Arc<Vec<HookTally>>>,
    Path(hook): Path<usize>,
    headers: HeaderMap,
) -> StatusCode {
    let Some(tally) = hooks.get(hook) else {
        return StatusCode::NOT_FOUND;
    };
    let delay = tally.delay_ms.load(Ordering::Relaxed);
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    let status = tally.status.load(Ordering::Relaxed);
    if !(200..300).contains(&status) {
        tally.failed.fetch_add(1, Ordering::Relaxed);
        return StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    }
    let id = headers
        .get("webhook-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| uuid::Uuid::parse_str(v).ok());
    if let Some(id) = id {
        let mut seen = tally.seen.lock().unwrap();
        let entry = seen.entry(id.as_u128()).or_default();
        entry.first.get_or_insert_with(Instant::now);
        entry.count += 1;
        if entry.count > 1 {
            tally.repeats.lock().unwrap().push(Instant::now());
        }
        tally.deliveries.fetch_add(1, Ordering::Relaxed);
    }
    StatusCode::from_u16(status).unwrap_or(StatusCode::NO_CONTENT)
}

// ---- the services -----------------------------------------------------------------------

/// A router or deliverer in a process of its own, on a fixed port so that it can be probed
/// across restarts.
struct Proc {
    role: &'static str,
    name: String,
    addr: SocketAddr,
    child: Option<Child>,
}

struct Setup {
    launcher: Launcher,
    prefix: String,
    env: Vec<(String, String)>,
    log_dir: PathBuf,
}

impl Setup {
    fn spawn(&self, proc: &mut Proc) {
        let mut args: Vec<&str> = self.launcher.args.iter().map(String::as_str).collect();
        args.push(proc.role);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_dir.join(format!("{}.log", proc.name)))
            .expect("the service's log file opens");
        let listen = format!("HOOKBUS_{}_LISTEN", proc.role.to_uppercase());
        let child = service::command(&self.launcher.program, &args, &self.prefix)
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env(listen, proc.addr.to_string())
            .env("RUST_LOG", "warn")
            .stderr(log)
            .spawn()
            .expect("the service process starts");
        proc.child = Some(child);
    }
}

impl Proc {
    fn new(role: &'static str, i: usize) -> Proc {
        Proc {
            role,
            name: format!("{role}-{i}"),
            addr: ([127, 0, 0, 1], spare_port()).into(),
            child: None,
        }
    }

    async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill().await;
        }
    }
}

// ---- publishing -------------------------------------------------------------------------

#[derive(Default)]
struct Ledger {
    accepted: Mutex<Vec<(u128, Instant)>>,
    via_ingest: AtomicU64,
    via_sdk: AtomicU64,
    retries: AtomicU64,
}

impl Ledger {
    fn accept(&self, id: &str) {
        if let Ok(id) = uuid::Uuid::parse_str(id) {
            self.accepted
                .lock()
                .unwrap()
                .push((id.as_u128(), Instant::now()));
        }
    }

    fn count(&self) -> u64 {
        self.accepted.lock().unwrap().len() as u64
    }
}

struct Clients {
    http: reqwest::Client,
    producer: SocketAddr,
    sdk: Publisher,
    ledger: Ledger,
}

impl Clients {
    /// One `POST /api/events`: the id if it was accepted.
    async fn ingest(&self, i: usize) -> Result<String, String> {
        let body = json!({"event": EVENT, "data": {"id": format!("u{i}")}});
        let res = self
            .http
            .post(format!("http://{}/api/events", self.producer))
            .bearer_auth(INGEST_TOKEN)
            .json(&body)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if res.status().as_u16() != 202 {
            return Err(format!("ingest answered {}", res.status()));
        }
        let body: serde_json::Value = res.json().await.map_err(|e| e.to_string())?;
        let id = body["id"].as_str().ok_or("no id in the 202")?;
        self.ledger.accept(id);
        self.ledger.via_ingest.fetch_add(1, Ordering::Relaxed);
        Ok(id.to_owned())
    }

    async fn sdk(&self, i: usize) -> Result<String, String> {
        let name = EventName::parse(EVENT).expect("a catalogue event");
        let fields = json!({"data": {"id": format!("u{i}")}})
            .as_object()
            .cloned()
            .unwrap_or_default();
        let id = self
            .sdk
            .publish_event(name, fields)
            .await
            .map_err(|e| e.to_string())?
            .to_string();
        self.ledger.accept(&id);
        self.ledger.via_sdk.fetch_add(1, Ordering::Relaxed);
        Ok(id)
    }

    /// Publishes event `i` until it is accepted, as an auth service does.
    async fn publish(&self, i: usize) {
        loop {
            let done = if i.is_multiple_of(2) {
                self.ingest(i).await
            } else {
                self.sdk(i).await
            };
            if done.is_ok() {
                return;
            }
            self.ledger.retries.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(CLIENT_RETRY).await;
        }
    }
}

/// Publishes `events` at `rate`, each until accepted.
async fn publish(clients: Arc<Clients>, events: usize, rate: f64) {
    let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
    let limit = Arc::new(tokio::sync::Semaphore::new(IN_FLIGHT));
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..events {
        ticker.tick().await;
        let permit = limit.clone().acquire_owned().await.expect("never closed");
        let clients = clients.clone();
        tasks.spawn(async move {
            clients.publish(i).await;
            drop(permit);
        });
        while tasks.try_join_next().is_some() {}
    }
    while tasks.join_next().await.is_some() {}
}

// ---- the soak ---------------------------------------------------------------------------

/// A small deterministic generator, so that a run's choices can be repeated from its seed.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

struct Soak {
    cluster: RabbitCluster,
    redis: RedisServer,
    setup: Setup,
    routers: Vec<Proc>,
    deliverers: Vec<Proc>,
    producer: Service,
    clients: Arc<Clients>,
    endpoints: Endpoints,
    phase: Arc<Mutex<String>>,
}

impl Soak {
    fn addrs(&self) -> Vec<SocketAddr> {
        let mut addrs = vec![self.producer.addr];
        addrs.extend(self.routers.iter().chain(&self.deliverers).map(|p| p.addr));
        addrs
    }

    fn say(&self, phase: impl Into<String>) {
        *self.phase.lock().unwrap() = phase.into();
    }

    /// Whether every process answers `/readyz` with 200 now.
    async fn all_ready(http: &reqwest::Client, addrs: &[SocketAddr]) -> bool {
        for addr in addrs {
            if pipeline::readiness(http, *addr).await.is_err() {
                return false;
            }
        }
        true
    }

    /// Waits (bounded) until every process is ready and the deliverers consume every hook
    /// as often as it has owners (two of them, or each deliverer when fewer).
    async fn wait_started(&self) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(120);
        let http = &self.clients.http;
        let owners = hookbus_contracts::owners::DEFAULT_OWNERS.min(self.deliverers.len());
        loop {
            let mut consumers = 0.0;
            for d in &self.deliverers {
                let n =
                    pipeline::metric(http, d.addr, hookbus_contracts::metric_names::HOOKS_OWNED)
                        .await;
                consumers += n.unwrap_or(0.0);
            }
            let consuming = consumers >= (HOOKS.len() * owners) as f64;
            if consuming && Soak::all_ready(http, &self.addrs()).await {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err("the services did not all become ready in 120 s".into());
            }
            tokio::time::sleep(PROBE_EVERY).await;
        }
    }

    /// Injects one fault, heals it, and measures the recovery meanwhile.
    async fn fault(
        &mut self,
        kind: Fault,
        rng: &mut Rng,
        start: Instant,
        plan: &Plan,
    ) -> FaultRecord {
        let injected = Instant::now();
        let healed = AtomicBool::new(false);
        let addrs = self.addrs();
        let clients = self.clients.clone();
        let phase = self.phase.clone();
        let watch = watch_recovery(&clients, &addrs, injected, &healed);
        let (target, node) = match kind {
            Fault::RouterKill | Fault::DelivererKill => {
                let procs = if kind == Fault::RouterKill {
                    &mut self.routers
                } else {
                    &mut self.deliverers
                };
                let i = rng.below(procs.len());
                let target = procs[i].name.clone();
                let setup = &self.setup;
                let proc = &mut procs[i];
                let heal = async {
                    proc.kill().await;
                    tokio::time::sleep(plan.process_down).await;
                    let down = injected.elapsed();
                    setup.spawn(proc);
                    healed.store(true, Ordering::SeqCst);
                    down
                };
                let (down, recovery) = tokio::join!(heal, watch);
                return record(kind, target, injected, start, down, recovery);
            }
            Fault::NodeKill | Fault::NodeDownLong => {
                let i = rng.below(self.cluster.nodes.len());
                (format!("node-{i}"), i)
            }
            Fault::RedisRestart => ("redis".to_owned(), usize::MAX),
        };
        match kind {
            Fault::NodeKill => {
                let cluster = &self.cluster;
                let heal = async {
                    cluster.nodes[node].kill().await;
                    tokio::time::sleep(plan.node_down).await;
                    let down_for = injected.elapsed();
                    phase.lock().unwrap().push_str(", node restarting");
                    cluster.nodes[node].start().await;
                    wait_nodes(cluster).await;
                    healed.store(true, Ordering::SeqCst);
                    down_for
                };
                let (down, recovery) = tokio::join!(heal, watch);
                record(kind, target, injected, start, down, recovery)
            }
            Fault::NodeDownLong => {
                // Recovery is measured while the node stays down; it is started again after.
                let node = &self.cluster.nodes[node];
                node.kill().await;
                healed.store(true, Ordering::SeqCst);
                let recovery = watch.await;
                let rest = plan.long_down.saturating_sub(injected.elapsed());
                tokio::time::sleep(rest).await;
                let down_for = injected.elapsed();
                phase.lock().unwrap().push_str(", node restarting");
                node.start().await;
                wait_nodes(&self.cluster).await;
                record(kind, target, injected, start, down_for, recovery)
            }
            _ => {
                let redis = &mut self.redis;
                let heal = async {
                    redis.restart().await;
                    healed.store(true, Ordering::SeqCst);
                    injected.elapsed()
                };
                let (down, recovery) = tokio::join!(heal, watch);
                record(kind, target, injected, start, down, recovery)
            }
        }
    }
}

/// Waits (bounded) until the cluster runs three nodes again.
async fn wait_nodes(cluster: &RabbitCluster) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while cluster.running_nodes().await < 3 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// What [`watch_recovery`] saw.
struct Recovery {
    ingest_back: Option<Duration>,
    ready_back: Option<Duration>,
    refused: u64,
}

/// Probes the ingest (each probe an event like any other: accepted, it is reconciled too)
/// and every process's `/readyz` from the kill until the fault is healed, both answer, and
/// [`SETTLE`] has passed since the heal; the times are those of the first success after the
/// last failure.
async fn watch_recovery(
    clients: &Clients,
    addrs: &[SocketAddr],
    injected: Instant,
    healed: &AtomicBool,
) -> Recovery {
    let mut ingest_back = None;
    let mut ready_back = None;
    let mut refused = 0;
    let mut healed_at: Option<Instant> = None;
    loop {
        let probe = tokio::time::timeout(Duration::from_secs(10), clients.ingest(usize::MAX));
        if matches!(probe.await, Ok(Ok(_))) {
            ingest_back.get_or_insert(injected.elapsed());
        } else {
            refused += 1;
            ingest_back = None;
        }
        if Soak::all_ready(&clients.http, addrs).await {
            ready_back.get_or_insert(injected.elapsed());
        } else {
            ready_back = None;
        }
        if healed.load(Ordering::SeqCst) {
            let at = *healed_at.get_or_insert_with(Instant::now);
            if at.elapsed() >= SETTLE && ingest_back.is_some() && ready_back.is_some() {
                break;
            }
        }
        if injected.elapsed() > RECOVERY_LIMIT && healed_at.is_some() {
            break;
        }
        tokio::time::sleep(PROBE_EVERY).await;
    }
    let ingest_back = if refused == 0 {
        Some(Duration::ZERO)
    } else {
        ingest_back
    };
    Recovery {
        ingest_back,
        ready_back,
        refused,
    }
}

fn record(
    kind: Fault,
    target: String,
    injected: Instant,
    start: Instant,
    down: Duration,
    recovery: Recovery,
) -> FaultRecord {
    FaultRecord {
        kind,
        target,
        at_s: injected.duration_since(start).as_secs_f64(),
        down_s: down.as_secs_f64(),
        ingest_back_s: recovery.ingest_back.map(|d| d.as_secs_f64()),
        ready_back_s: recovery.ready_back.map(|d| d.as_secs_f64()),
        ingest_refused: recovery.refused,
        duplicates_after: 0,
    }
}

/// Runs the whole soak: starts the cluster, Redis and the services, publishes while the
/// faults are injected one after the other, waits for every delivery (up to `plan.drain`),
/// and reconciles.
pub async fn run(plan: &Plan) -> Result<Summary, String> {
    let began = Instant::now();
    let phase = Arc::new(Mutex::new("starting a three-node cluster".to_owned()));
    let progress = spawn_progress(plan, phase.clone(), None);
    std::fs::create_dir_all(&plan.log_dir).map_err(|e| e.to_string())?;
    let cluster = RabbitCluster::start().await;
    let redis = RedisServer::start().await;
    let prefix = pipeline::unique_prefix("chaos");
    let servers = Servers {
        amqp_url: cluster.amqp_urls(),
        redis_url: redis.url(),
        hook_queues: QueueType::Quorum,
    };
    let endpoints = Endpoints::start(HOOKS.len()).await;
    endpoints.hooks[SLOW]
        .delay_ms
        .store(plan.slow_delay.as_millis() as u64, Ordering::Relaxed);
    store_hooks(&servers, &prefix, &endpoints).await?;

    let setup = Setup {
        launcher: plan.launcher.clone(),
        prefix: prefix.clone(),
        env: vec![
            ("HOOKBUS_AMQP_URL".into(), servers.amqp_url.clone()),
            ("HOOKBUS_REDIS_URL".into(), servers.redis_url.clone()),
            ("HOOKBUS_HOOK_QUEUE_TYPE".into(), "quorum".into()),
            ("HOOKBUS_RETRY_SCHEDULE".into(), RETRY_SCHEDULE.into()),
        ],
        log_dir: plan.log_dir.clone(),
    };
    let mut routers: Vec<Proc> = (0..plan.routers).map(|i| Proc::new("router", i)).collect();
    let mut deliverers: Vec<Proc> = (0..plan.deliverers)
        .map(|i| Proc::new("deliverer", i))
        .collect();
    for p in routers.iter_mut().chain(&mut deliverers) {
        setup.spawn(p);
    }
    let producer =
        pipeline::start_producer_with(pipeline::producer_config(&prefix, &servers, 256 * 1024))
            .await;
    let sdk = Publisher::connect(&servers.amqp_url, &prefix)
        .await
        .map_err(|e| format!("the SDK publisher: {e}"))?;
    let clients = Arc::new(Clients {
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(15))
            .build()
            .map_err(|e| e.to_string())?,
        producer: producer.addr,
        sdk,
        ledger: Ledger::default(),
    });
    let mut soak = Soak {
        cluster,
        redis,
        setup,
        routers,
        deliverers,
        producer,
        clients: clients.clone(),
        endpoints,
        phase: phase.clone(),
    };
    soak.say("waiting for every service to be ready");
    soak.wait_started().await?;
    progress.abort();
    let progress = spawn_progress(plan, phase.clone(), Some(clients.clone()));

    // Publish, fail the failing hook for a while, and inject the faults, all at once.
    let start = Instant::now();
    soak.say("publishing");
    let publishing = tokio::spawn({
        let clients = clients.clone();
        let (events, rate) = (plan.events, plan.rate);
        async move {
            publish(clients, events, rate).await;
            start.elapsed()
        }
    });
    let hooks = soak.endpoints.hooks.clone();
    let (fail_at, fail_for) = plan.failing;
    let failing = tokio::spawn(async move {
        tokio::time::sleep(fail_at).await;
        hooks[FAILING].status.store(500, Ordering::Relaxed);
        tokio::time::sleep(fail_for).await;
        hooks[FAILING].status.store(204, Ordering::Relaxed);
    });
    let period = Duration::from_secs_f64(plan.events as f64 / plan.rate);
    let mut rng = Rng(plan.seed.max(1));
    let mut faults = Vec::new();
    let n = plan.faults.len() as u32;
    for (k, kind) in plan.faults.iter().enumerate() {
        let at = start + period * (k as u32 + 1) / (n + 1);
        tokio::time::sleep_until(at.into()).await;
        soak.say(format!("fault {}/{n}: {kind:?}", k + 1));
        let record = soak.fault(*kind, &mut rng, start, plan).await;
        soak.say(format!(
            "fault {}/{n}: {kind:?} on {} recovered",
            k + 1,
            record.target
        ));
        faults.push(record);
    }
    let publish_s = publishing
        .await
        .map_err(|e| format!("publishing: {e}"))?
        .as_secs_f64();
    let _ = failing.await;

    // Drain: every accepted id at every hook, or the deadline; then until duplicates stop.
    let accepted = clients.ledger.accepted.lock().unwrap().clone();
    let deadline = Instant::now() + plan.drain;
    loop {
        let missing: usize = (0..HOOKS.len())
            .map(|h| soak.endpoints.missing(h, &accepted))
            .sum();
        soak.say(format!("draining: {missing} deliveries to come"));
        if missing == 0 || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let mut last = soak.endpoints.deliveries();
    let quiet_until = Instant::now() + Duration::from_secs(30);
    loop {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let now = soak.endpoints.deliveries();
        if now == last || Instant::now() > quiet_until {
            break;
        }
        last = now;
    }
    progress.abort();

    let windows: Vec<(Instant, Instant)> = faults
        .iter()
        .map(|f| {
            let from = start + Duration::from_secs_f64(f.at_s);
            let to =
                from + Duration::from_secs_f64(f.ready_back_s.unwrap_or(f.down_s).max(f.down_s));
            (from, to)
        })
        .collect();
    let summary = reconcile(
        plan,
        &soak,
        &clients.ledger,
        &accepted,
        &windows,
        faults,
        publish_s,
        began,
    );
    for p in soak.routers.iter_mut().chain(&mut soak.deliverers) {
        p.kill().await;
    }
    Ok(summary)
}

/// Stores the hooks in Redis as the admin API does (no router runs yet).
async fn store_hooks(servers: &Servers, prefix: &str, endpoints: &Endpoints) -> Result<(), String> {
    let store = hookbus_runtime::store::HookStore::new(
        &servers.redis_url,
        hookbus_contracts::keys::RedisKeys::new(prefix),
    )
    .map_err(|e| e.to_string())?;
    for (i, name) in HOOKS.iter().enumerate() {
        let input: hookbus_contracts::hook::HookInput = serde_json::from_value(
            json!({"name": name, "events": [EVENT], "config": {"url": endpoints.url(i)}}),
        )
        .map_err(|e| e.to_string())?;
        let hook = input
            .validate(&pipeline::targets().policy())
            .map_err(|e| e.to_string())?;
        store.insert(&hook).await.map_err(|e| e.to_string())?;
    }
    Ok(())
}

fn spawn_progress(
    plan: &Plan,
    phase: Arc<Mutex<String>>,
    clients: Option<Arc<Clients>>,
) -> tokio::task::JoinHandle<()> {
    let on = plan.progress.clone();
    let events = plan.events as u64;
    tokio::spawn(async move {
        let Some(on) = on else { return };
        loop {
            let accepted = clients.as_ref().map_or(0, |c| c.ledger.count());
            let phase = phase.lock().unwrap().clone();
            on(&Progress {
                accepted,
                events,
                phase,
            });
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    })
}

fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    Some(sorted[i])
}

fn sorted(mut v: Vec<f64>) -> Vec<f64> {
    v.sort_by(f64::total_cmp);
    v
}

#[allow(clippy::too_many_arguments)]
fn reconcile(
    plan: &Plan,
    soak: &Soak,
    ledger: &Ledger,
    accepted: &[(u128, Instant)],
    windows: &[(Instant, Instant)],
    mut faults: Vec<FaultRecord>,
    publish_s: f64,
    began: Instant,
) -> Summary {
    let in_fault = |at: Instant| windows.iter().any(|(a, b)| at >= *a && at <= *b);
    let (mut fault_late, mut calm_late) = (Vec::new(), Vec::new());
    let mut hooks = Vec::new();
    for (h, name) in HOOKS.iter().enumerate() {
        let tally = &soak.endpoints.hooks[h];
        let seen = tally.seen.lock().unwrap();
        let mut lost_ids = Vec::new();
        let mut lost = 0;
        let mut duplicates = 0u64;
        let mut late = Vec::with_capacity(accepted.len());
        for (id, at) in accepted {
            match seen.get(id) {
                Some(s) => {
                    duplicates += u64::from(s.count.saturating_sub(1));
                    let first = s.first.unwrap_or(*at);
                    let ms = first.saturating_duration_since(*at).as_secs_f64() * 1e3;
                    late.push(ms);
                    if h != FAILING {
                        if in_fault(*at) {
                            fault_late.push(ms);
                        } else {
                            calm_late.push(ms);
                        }
                    }
                }
                None => {
                    lost += 1;
                    if lost_ids.len() < 20 {
                        lost_ids.push(uuid::Uuid::from_u128(*id).to_string());
                    }
                }
            }
        }
        let late = sorted(late);
        hooks.push(HookFigures {
            hook: name,
            lost,
            deliveries: tally.deliveries.load(Ordering::Relaxed),
            duplicates,
            failed_attempts: tally.failed.load(Ordering::Relaxed),
            late_p50_ms: percentile(&late, 0.5),
            late_p99_ms: percentile(&late, 0.99),
            lost_ids,
        });
    }
    let deliveries: u64 = hooks.iter().map(|h| h.deliveries).sum();
    let duplicates: u64 = hooks.iter().map(|h| h.duplicates).sum();
    let mut duplicates_before_faults = 0;
    for tally in soak.endpoints.hooks.iter() {
        for repeat in tally.repeats.lock().unwrap().iter() {
            // The windows are in the faults' order, which is the order they happened in.
            match windows.iter().rposition(|(from, _)| from <= repeat) {
                Some(k) => faults[k].duplicates_after += 1,
                None => duplicates_before_faults += 1,
            }
        }
    }
    let (fault_late, calm_late) = (sorted(fault_late), sorted(calm_late));
    Summary {
        events: plan.events,
        rate: plan.rate,
        accepted: accepted.len() as u64,
        accepted_via_ingest: ledger.via_ingest.load(Ordering::Relaxed),
        accepted_via_sdk: ledger.via_sdk.load(Ordering::Relaxed),
        publish_retries: ledger.retries.load(Ordering::Relaxed),
        publish_s,
        run_s: began.elapsed().as_secs_f64(),
        lost: hooks.iter().map(|h| h.lost).sum(),
        deliveries,
        duplicates,
        duplicate_pct: if deliveries == 0 {
            0.0
        } else {
            duplicates as f64 * 100.0 / deliveries as f64
        },
        duplicates_before_faults,
        late_p99_fault_ms: percentile(&fault_late, 0.99),
        late_p99_calm_ms: percentile(&calm_late, 0.99),
        late_p50_calm_ms: percentile(&calm_late, 0.5),
        hooks,
        faults,
        seed: plan.seed,
    }
}
