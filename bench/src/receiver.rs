//! The webhook receiver both paths deliver to: an axum server on loopback that answers 204
//! and records, per phase, how many requests arrived, when the last one did, and each one's
//! latency (from the send time in its body). It keeps only counters and numbers, so it
//! stays cheap at tens of thousands of requests.
//!
//! Besides `/hook` (answers at once) it serves the endpoints of the scenarios: `/slow`
//! (50 ms per request), `/uncounted` (answers at once, not counted), `/hang` (never answers before the deliverer's attempt timeout; not
//! counted) and `/flaky` (answers 500 to the first attempt of every fifth `webhook-id`;
//! only the successful attempts are counted).

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Result};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use serde_json::Value;

use crate::load::{Clock, SENT_FIELD};

struct Shared {
    clock: Clock,
    arrived: AtomicUsize,
    body_bytes: AtomicU64,
    last_arrival_ns: AtomicU64,
    latencies_ns: Mutex<Vec<u64>>,
    /// `webhook-id`s `/flaky` has seen, and how many first attempts it failed.
    flaky_seen: Mutex<HashSet<String>>,
    flaky_failed: AtomicUsize,
}

/// How long `/slow` takes per request.
pub const SLOW: Duration = Duration::from_millis(50);
/// `/flaky` fails the first attempt of one `webhook-id` in this many.
pub const FLAKY_EVERY: usize = 5;

pub struct Receiver {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl Receiver {
    /// Starts on a free loopback port.
    pub async fn start(clock: Clock) -> Result<Receiver> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            clock,
            arrived: AtomicUsize::new(0),
            body_bytes: AtomicU64::new(0),
            last_arrival_ns: AtomicU64::new(0),
            latencies_ns: Mutex::new(Vec::new()),
            flaky_seen: Mutex::new(HashSet::new()),
            flaky_failed: AtomicUsize::new(0),
        });
        let app = Router::new()
            .route("/hook", post(receive))
            .route("/slow", post(slow))
            .route("/hang", post(hang))
            .route("/flaky", post(flaky))
            .route("/uncounted", post(uncounted))
            .with_state(shared.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Receiver { addr, shared, task })
    }

    pub fn url(&self) -> String {
        self.url_at("hook")
    }

    /// The URL of one of the scenario endpoints (`slow`, `hang`, `flaky`).
    pub fn url_at(&self, path: &str) -> String {
        format!("http://{}/{path}", self.addr)
    }

    /// First attempts `/flaky` failed so far.
    pub fn flaky_failed(&self) -> usize {
        self.shared.flaky_failed.load(Ordering::SeqCst)
    }

    /// Requests arrived since the last reset.
    pub fn received(&self) -> usize {
        self.shared.arrived.load(Ordering::SeqCst)
    }

    /// Forgets what arrived so far: the start of a phase.
    pub fn reset(&self) {
        self.shared.arrived.store(0, Ordering::SeqCst);
        self.shared.body_bytes.store(0, Ordering::SeqCst);
        self.take_latencies();
    }

    /// The latencies recorded since the last reset, in nanoseconds, arrival order.
    pub fn take_latencies(&self) -> Vec<u64> {
        std::mem::take(&mut *self.shared.latencies_ns.lock().expect("latencies lock"))
    }

    /// Mean body size of what arrived since the last reset.
    pub fn mean_body_bytes(&self) -> u64 {
        let n = self.shared.arrived.load(Ordering::SeqCst).max(1) as u64;
        self.shared.body_bytes.load(Ordering::SeqCst) / n
    }

    /// Waits until `n` requests arrived since the last reset; returns the last arrival's
    /// time on the shared clock.
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> Result<u64> {
        let deadline = tokio::time::Instant::now() + timeout;
        let progress = crate::progress::bar(n as u64, "arrived");
        loop {
            let arrived = self.shared.arrived.load(Ordering::SeqCst);
            progress.set_position(arrived.min(n) as u64);
            if arrived >= n {
                progress.finish_and_clear();
                return Ok(self.shared.last_arrival_ns.load(Ordering::SeqCst));
            }
            if tokio::time::Instant::now() >= deadline {
                progress.abandon();
                bail!("the receiver got {arrived} of {n} messages within {timeout:?}");
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn slow(State(shared): State<Arc<Shared>>, body: Bytes) -> StatusCode {
    tokio::time::sleep(SLOW).await;
    receive(State(shared), body).await
}

/// A good endpoint whose deliveries are not counted (the isolation baseline's fifth hook).
async fn uncounted() -> StatusCode {
    StatusCode::NO_CONTENT
}

/// Holds the request until the deliverer gives up on it.
async fn hang() -> StatusCode {
    tokio::time::sleep(Duration::from_secs(3600)).await;
    StatusCode::NO_CONTENT
}

async fn flaky(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let id = headers
        .get("webhook-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let fail = {
        let mut seen = shared.flaky_seen.lock().expect("flaky lock");
        let first = seen.insert(id);
        first && seen.len() % FLAKY_EVERY == 0
    };
    if fail {
        shared.flaky_failed.fetch_add(1, Ordering::SeqCst);
        return StatusCode::INTERNAL_SERVER_ERROR;
    }
    receive(State(shared), body).await
}

async fn receive(State(shared): State<Arc<Shared>>, body: Bytes) -> StatusCode {
    let now = shared.clock.now_ns();
    if let Some(sent) = sent_ns(&body) {
        let mut latencies = shared.latencies_ns.lock().expect("latencies lock");
        latencies.push(now.saturating_sub(sent));
    }
    shared
        .body_bytes
        .fetch_add(body.len() as u64, Ordering::SeqCst);
    shared.last_arrival_ns.fetch_max(now, Ordering::SeqCst);
    shared.arrived.fetch_add(1, Ordering::SeqCst);
    StatusCode::NO_CONTENT
}

fn sent_ns(body: &[u8]) -> Option<u64> {
    serde_json::from_slice::<Value>(body)
        .ok()?
        .get(SENT_FIELD)?
        .as_u64()
}
