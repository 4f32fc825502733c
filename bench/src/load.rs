//! The workload both paths share: the message body, a saturated burst with a bounded
//! window of publishes in flight, and a paced run at a fixed rate. A path plugs in only its
//! `send` (one publish, returning once the broker confirmed it).

use std::future::Future;
use std::time::{Duration, Instant};

use anyhow::{anyhow, ensure, Result};
use futures::{StreamExt, TryStreamExt};
use serde_json::{json, Map, Value};

use crate::figures::{repeat, LatencyRun, Runs, Throughput};
use crate::receiver::Receiver;

/// Publishes in flight at once (awaiting their confirm).
pub const WINDOW: usize = 256;

/// The body field carrying the send time, read back by the receiver.
pub const SENT_FIELD: &str = "benchSentNs";

/// The longest wait for one phase's messages to arrive.
pub const ARRIVAL_TIMEOUT: Duration = Duration::from_secs(120);

/// One monotonic time base for senders and the receiver (all in this process).
#[derive(Clone, Copy)]
pub struct Clock(Instant);

impl Clock {
    pub fn start() -> Clock {
        Clock(Instant::now())
    }

    pub fn now_ns(self) -> u64 {
        self.0.elapsed().as_nanos() as u64
    }
}

/// The fields of message `seq`: a PostSignIn-like payload of about 300 bytes of JSON.
pub fn fields(seq: usize, sent_ns: u64) -> Map<String, Value> {
    let value = json!({
        SENT_FIELD: sent_ns,
        "benchSeq": seq,
        "interactionEvent": "SignIn",
        "sessionId": format!("bench-session-{seq:08}"),
        "userAgent": "Mozilla/5.0 (X11; Linux x86_64) hookbus-bench/1.0",
        "userId": format!("user-{:08}", seq % 10_000),
        "userIp": "127.0.0.1",
        "application": {"id": "bench-app", "type": "SPA", "name": "Benchmark application"},
    });
    match value {
        Value::Object(map) => map,
        _ => unreachable!("a json! object literal is an object"),
    }
}

/// How much load each path gets.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Plan {
    /// Messages of each saturated run.
    pub events: usize,
    /// Messages sent, and not measured, before a path's measurements.
    pub warmup: usize,
    /// Messages of the saturated HTTP-ingest run.
    pub ingest_events: usize,
    /// Paced rates, messages per second.
    pub rates: Vec<u32>,
    /// hookbus's one-hook saturation measured at the start of the run, if it was; some of
    /// the `rates` are shares of it.
    pub saturation: Option<f64>,
    /// Duration of each paced run.
    pub paced_secs: u64,
    /// Idle queues declared per queue type.
    pub idle_queues: usize,
    /// Times each saturated measurement is made.
    pub repeats: usize,
}

impl Plan {
    /// Adds paced rates at `shares` of `saturation` (messages per second), rounded to tens.
    pub fn add_shares(&mut self, saturation: f64, shares: &[f64]) {
        self.saturation = Some(saturation);
        for share in shares {
            let rate = (saturation * share / 10.0).round() as u32 * 10;
            self.rates.push(rate.max(10));
        }
        self.rates.sort_unstable();
        self.rates.dedup();
    }
}

/// What one path achieved.
#[derive(Debug, Clone)]
pub struct PathFigures {
    pub saturated: Runs,
    pub paced: Vec<LatencyRun>,
    /// Mean size of the bodies the receiver got.
    pub body_bytes: u64,
}

/// A pause for the broker to finish what the previous phase left behind (deleted queues,
/// log truncation), so that it does not land in the next phase's latency tail.
const SETTLE: Duration = Duration::from_secs(5);

/// After a pause and a warm-up: one paced run per rate of `plan`, then the saturated run
/// (last, so that the backlog a burst leaves in the broker cannot skew the latencies).
pub async fn measure<F, Fut>(
    clock: Clock,
    receiver: &Receiver,
    plan: &Plan,
    send: F,
) -> Result<PathFigures>
where
    F: Fn(Map<String, Value>) -> Fut,
    Fut: Future<Output = Result<()>>,
{
    tokio::time::sleep(SETTLE).await;
    saturated(clock, receiver, plan.warmup, &send).await?;
    let mut paced_runs = Vec::new();
    for &rate in &plan.rates {
        // The broker pauses now and then for tens of milliseconds: one pause in a run is its
        // p99. Of `repeats` runs, the one with the median p99 is kept.
        let mut runs = Vec::new();
        for _ in 0..plan.repeats {
            runs.push(paced(clock, receiver, rate, plan.paced_secs, &send).await?);
        }
        runs.sort_by_key(|run| run.p99);
        let latency = runs.swap_remove(runs.len() / 2);
        println!("  paced {rate}/s: {latency}");
        paced_runs.push(latency);
    }
    let saturated = repeat("saturated", plan.repeats, || {
        saturated(clock, receiver, plan.events, &send)
    })
    .await?;
    Ok(PathFigures {
        saturated,
        paced: paced_runs,
        body_bytes: receiver.mean_body_bytes(),
    })
}

/// Publishes `n` messages as fast as `WINDOW` allows; the span ends when the last arrives.
pub async fn saturated<F, Fut>(
    clock: Clock,
    receiver: &Receiver,
    n: usize,
    send: F,
) -> Result<Throughput>
where
    F: Fn(Map<String, Value>) -> Fut,
    Fut: Future<Output = Result<()>>,
{
    fanned_out(clock, receiver, n, 1, send).await
}

/// Publishes `n` messages as fast as `WINDOW` allows, each of which reaches the receiver
/// `per_message` times (one per hook); the throughput counts arrivals.
pub async fn fanned_out<F, Fut>(
    clock: Clock,
    receiver: &Receiver,
    n: usize,
    per_message: usize,
    send: F,
) -> Result<Throughput>
where
    F: Fn(Map<String, Value>) -> Fut,
    Fut: Future<Output = Result<()>>,
{
    receiver.reset();
    let start = clock.now_ns();
    publish_all(clock, n, &send).await?;
    let expected = n * per_message;
    let last = receiver.wait_for(expected, ARRIVAL_TIMEOUT).await?;
    Ok(Throughput {
        messages: expected,
        elapsed: Duration::from_nanos(last.saturating_sub(start)),
    })
}

/// Publishes `n` messages with `WINDOW` in flight; returns once all are confirmed.
pub async fn publish_all<F, Fut>(clock: Clock, n: usize, send: F) -> Result<()>
where
    F: Fn(Map<String, Value>) -> Fut,
    Fut: Future<Output = Result<()>>,
{
    futures::stream::iter(0..n)
        .map(|seq| send(fields(seq, clock.now_ns())))
        .buffer_unordered(WINDOW)
        .try_collect::<()>()
        .await
}

/// Publishes `rate` messages a second for `secs` seconds, on a fixed schedule; latency is
/// from the moment each publish is called to its arrival at the receiver.
pub async fn paced<F, Fut>(
    clock: Clock,
    receiver: &Receiver,
    rate: u32,
    secs: u64,
    send: F,
) -> Result<LatencyRun>
where
    F: Fn(Map<String, Value>) -> Fut,
    Fut: Future<Output = Result<()>>,
{
    paced_fanned_out(clock, receiver, rate, secs, 1, send).await
}

/// [`paced`], each message reaching the receiver `per_message` times (one per hook); the
/// arrival rate counts arrivals.
pub async fn paced_fanned_out<F, Fut>(
    clock: Clock,
    receiver: &Receiver,
    rate: u32,
    secs: u64,
    per_message: usize,
    send: F,
) -> Result<LatencyRun>
where
    F: Fn(Map<String, Value>) -> Fut,
    Fut: Future<Output = Result<()>>,
{
    ensure!(rate > 0, "a paced rate must be positive");
    receiver.reset();
    let n = rate as usize * secs as usize;
    let period = Duration::from_secs(1) / rate;
    let start = tokio::time::Instant::now();
    let first = clock.now_ns();
    futures::stream::iter(0..n)
        .then(|seq| async move {
            tokio::time::sleep_until(start + period * seq as u32).await;
            seq
        })
        .map(|seq| send(fields(seq, clock.now_ns())))
        .buffer_unordered(WINDOW)
        .try_collect::<()>()
        .await?;
    let last = receiver.wait_for(n * per_message, ARRIVAL_TIMEOUT).await?;
    let achieved_per_sec =
        (n * per_message) as f64 / Duration::from_nanos(last.saturating_sub(first)).as_secs_f64();
    LatencyRun::new(rate, receiver.take_latencies(), achieved_per_sec)
        .ok_or_else(|| anyhow!("no latency sample arrived at {rate}/s"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_body_is_about_300_bytes_and_carries_its_send_time() {
        let body = serde_json::to_vec(&fields(123, 456)).unwrap();
        assert!((250..=350).contains(&body.len()), "{} bytes", body.len());
        assert_eq!(fields(1, 42)[SENT_FIELD], 42);
    }
}
