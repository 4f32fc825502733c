//! The figures as tables (printed) and as `docs/BENCHMARKS.md` (written), with the machine
//! they were measured on.

use std::fmt::Write;
use std::time::Duration;

use time::macros::format_description;
use time::OffsetDateTime;
use tokio::process::Command;

use crate::load::{ms, LatencyRun, PathFigures, Plan, Throughput};
use crate::pipeline::HookbusFigures;
use crate::queues::{per_queue, QueueFigures};
use crate::rabbitmqctl;

pub struct Machine {
    date: String,
    cpus: usize,
    cpu_model: String,
    rustc: String,
    rabbitmq: String,
    erlang: String,
}

impl Machine {
    pub async fn detect() -> Machine {
        let status = rabbitmqctl::status().await;
        let date = OffsetDateTime::now_utc()
            .format(format_description!(
                "[year]-[month]-[day] [hour]:[minute] UTC"
            ))
            .unwrap_or_default();
        Machine {
            date,
            cpus: std::thread::available_parallelism().map_or(0, |n| n.get()),
            cpu_model: cpu_model().unwrap_or_else(|| "unknown".into()),
            rustc: rustc_version().await.unwrap_or_else(|| "unknown".into()),
            rabbitmq: status
                .as_ref()
                .map_or("unknown".into(), |s| s.rabbitmq_version.clone()),
            erlang: status.map_or("unknown".into(), |s| s.erlang_version),
        }
    }
}

fn cpu_model() -> Option<String> {
    let info = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("model name"))?;
    Some(line.split_once(':')?.1.trim().to_owned())
}

async fn rustc_version() -> Option<String> {
    let out = Command::new("rustc").arg("--version").output().await.ok()?;
    Some(String::from_utf8_lossy(&out.stdout).trim().to_owned()).filter(|v| !v.is_empty())
}

pub struct Report<'a> {
    pub machine: Machine,
    pub plan: &'a Plan,
    pub bare: &'a PathFigures,
    pub hookbus: &'a HookbusFigures,
    pub queues: Option<&'a [QueueFigures]>,
    pub run_time: Duration,
}

impl Report<'_> {
    /// The measured figures, as Markdown tables (also readable in a terminal).
    pub fn tables(&self) -> String {
        let mut out = String::new();
        out += &self.throughput_table();
        out += "\n";
        out += &self.latency_table();
        out += "\n";
        out += &self.ratio_lines();
        if let Some(queues) = self.queues {
            out += "\n";
            out += &queue_table(queues);
        }
        out
    }

    /// The whole of `docs/BENCHMARKS.md`.
    pub fn markdown(&self) -> String {
        let mut out = String::from(INTRO);
        out += &self.machine_section();
        out += "\n## Delivery: bare broker against hookbus (one hook)\n\n";
        out += &self.throughput_table();
        out += "\n";
        out += &self.latency_table();
        out += "\n";
        out += &self.ratio_lines();
        out += "\n## Per-hook queue type: classic v2 or quorum\n\n";
        match self.queues {
            Some(queues) => {
                out += &queue_table(queues);
                out += "\n";
                out += &queue_verdict(queues);
            }
            None => out += "Not measured in this run (`--skip-queues`).\n",
        }
        out += NOTES;
        out
    }

    fn machine_section(&self) -> String {
        let m = &self.machine;
        let p = self.plan;
        let rates: Vec<String> = p.rates.iter().map(u32::to_string).collect();
        format!(
            "## This run\n\n\
             - date: {}\n\
             - machine: {} CPUs (`nproc`), {}\n\
             - RabbitMQ {} on {}; Redis on the same machine\n\
             - {}, release build\n\
             - load: {} messages per saturated run (after {} of warm-up), {} through the \
             HTTP ingest, paced runs of {} s at {} messages/s, {} idle queues per type\n\
             - the whole run took {:.0} s\n",
            m.date,
            m.cpus,
            m.cpu_model,
            m.rabbitmq,
            m.erlang,
            m.rustc,
            p.events,
            p.warmup,
            p.ingest_events,
            p.paced_secs,
            rates.join(" and "),
            p.idle_queues,
            self.run_time.as_secs_f64()
        )
    }

    fn throughput_table(&self) -> String {
        let bare = self.bare.saturated.per_sec();
        let mut out = String::from(
            "| path (saturated, 256 publishes in flight) | messages | time (s) | \
             throughput (msg/s) | vs bare | body at receiver (bytes) |\n\
             |---|---:|---:|---:|---:|---:|\n",
        );
        let mut row = |name: &str, run: &Throughput, body: String| {
            let _ = writeln!(
                out,
                "| {name} | {} | {:.2} | {:.0} | {:.2}× | {body} |",
                run.messages,
                run.elapsed.as_secs_f64(),
                run.per_sec(),
                run.per_sec() / bare
            );
        };
        row(
            "bare broker",
            &self.bare.saturated,
            self.bare.body_bytes.to_string(),
        );
        row(
            "hookbus, Rust SDK `Publisher`",
            &self.hookbus.sdk.saturated,
            self.hookbus.sdk.body_bytes.to_string(),
        );
        row(
            "hookbus, HTTP ingest `POST /api/events`",
            &self.hookbus.ingest,
            "same".into(),
        );
        out
    }

    fn latency_table(&self) -> String {
        let mut out = String::from(
            "| path (paced; publish call → receiver) | rate (msg/s) | messages | \
             arrived at (msg/s) | p50 (ms) | p99 (ms) | max (ms) |\n\
             |---|---:|---:|---:|---:|---:|---:|\n",
        );
        let paths = [
            ("bare broker", &self.bare.paced),
            ("hookbus, Rust SDK", &self.hookbus.sdk.paced),
        ];
        for (name, runs) in paths {
            for run in runs.iter() {
                let _ = writeln!(
                    out,
                    "| {name} | {} | {} | {:.0} | {:.2} | {:.2} | {:.2} |",
                    run.rate,
                    run.samples,
                    run.achieved_per_sec,
                    ms(run.p50),
                    ms(run.p99),
                    ms(run.max)
                );
            }
        }
        out
    }

    fn ratio_lines(&self) -> String {
        let (bare, hookbus) = (&self.bare, &self.hookbus.sdk);
        let mut out = format!(
            "hookbus / bare: saturated throughput **{:.2}×** (Rust SDK), {:.2}× (HTTP ingest)",
            hookbus.saturated.per_sec() / bare.saturated.per_sec(),
            self.hookbus.ingest.per_sec() / bare.saturated.per_sec()
        );
        for (b, h) in bare.paced.iter().zip(&hookbus.paced) {
            let _ = write!(
                out,
                "; at {}/s p50 {} and p99 {}",
                b.rate,
                latency_ratio(b, h, |r| r.p50),
                latency_ratio(b, h, |r| r.p99)
            );
        }
        out + ".\n"
    }
}

fn latency_ratio(
    bare: &LatencyRun,
    hookbus: &LatencyRun,
    pick: fn(&LatencyRun) -> Duration,
) -> String {
    format!(
        "{:.1}×",
        pick(hookbus).as_secs_f64() / pick(bare).as_secs_f64()
    )
}

fn queue_table(queues: &[QueueFigures]) -> String {
    let mut out = String::from(
        "| queue type | one queue: confirmed publish + acked consume (msg/s) | idle queues | \
         declare (s) | delete (s) | memory per idle queue (`list_queues memory`) | \
         Erlang VM growth per idle queue |\n\
         |---|---:|---:|---:|---:|---:|---:|\n",
    );
    for q in queues {
        let idle = &q.idle;
        let _ = writeln!(
            out,
            "| {} | {:.0} | {} | {:.1} | {:.1} | {} | {} |",
            q.kind.label(),
            q.throughput.per_sec(),
            idle.queues,
            idle.declare.as_secs_f64(),
            idle.delete.as_secs_f64(),
            per_queue(idle.queues_memory.map(|b| b as i64), idle.queues),
            per_queue(idle.vm_delta, idle.queues)
        );
    }
    out
}

/// The comparison in words, from the figures: quorum against classic v2.
fn queue_verdict(queues: &[QueueFigures]) -> String {
    let [classic, quorum] = queues else {
        return String::new();
    };
    let ratio = |f: fn(&QueueFigures) -> Option<f64>| match (f(quorum), f(classic)) {
        (Some(q), Some(c)) if c > 0.0 => format!("{:.1}×", q / c),
        _ => "n/a".into(),
    };
    format!(
        "Quorum relative to classic v2, measured here: throughput through one queue \
         {}, memory per idle queue {} (`list_queues`) and {} (VM growth), declaration time {}.\n\n\
         **Chosen: classic v2 for per-hook queues** (hookbus's `Topology::declare_hook`), \
         quorum for the events and dead-letter queues. hookbus has one queue per hook, so the \
         per-queue cost of an idle queue is what grows with the number of hooks; a quorum \
         queue is a Raft group (its own process, log and WAL traffic) even when idle. The \
         price of classic v2 is that a per-hook backlog lives on one node only: it survives a \
         broker restart (durable queue, persistent messages) but not the loss of that node's \
         disk.\n",
        ratio(|q| Some(q.throughput.per_sec())),
        ratio(|q| q.idle.queues_memory.map(|b| b as f64)),
        ratio(|q| q.idle.vm_delta.map(|b| b as f64)),
        ratio(|q| Some(q.idle.declare.as_secs_f64())),
    )
}

const INTRO: &str = "# Benchmarks

What hookbus delivers on one machine, against the limit of the broker alone doing the same
hops. Every figure below was measured, and this file was written, by one run of:

```sh
cargo run --release -p hookbus-bench
# options: --events N  --ingest-events N  --rates 100,1000  --paced-secs S
#          --idle-queues N  --skip-queues  --out PATH
```

It needs the RabbitMQ at 127.0.0.1:5672 (guest/guest) and the Redis at 127.0.0.1:6379 of
the test setup, takes a few minutes on two cores, and deletes every queue and Redis
key it creates (names `bench-*` and `t-bench-*`). `rabbitmqctl` gives the broker's version
and memory; without it those cells read \"n/a\".

- **Bare broker**: a publisher sends ~300-byte JSON messages, persistent, with publisher
  confirms, to a quorum queue A; a relay consumes A (manual ack, prefetch 256), publishes
  each to a classic v2 queue B with a confirm and acks A after it; a deliverer consumes B
  (prefetch 256), signs the body (HMAC-SHA256), POSTs it with reqwest to an axum receiver
  on 127.0.0.1 and acks B after the 2xx. These are hookbus's hops and queue types with
  none of its logic.
- **hookbus**: producer, router and one deliverer started in-process by the test harness
  (`hookbus_tests::Pipeline`) under a prefix of their own, one hook subscribed to
  `PostSignIn` pointing at the same receiver; events published with
  `hookbus_producer::Publisher::publish_event`, or `POST /api/events` for the ingest row.
- **Saturated**: N messages published as fast as 256 publishes in flight allow; the time
  runs from the first publish to the receiver's last arrival.
- **Paced**: a fixed rate for a few seconds; latency runs from the moment a publish is
  called to its arrival at the receiver (the send time travels in the body,
  `benchSentNs`), all on one monotonic clock in one process.

";

const NOTES: &str = "
## Notes

- **Two cores for everything.** RabbitMQ, Redis, the three hookbus services, the load
  generator and the receiver share two cores; in production the broker has its own
  machines. The figures are this machine's ceiling for the whole system, not hookbus's
  alone, and compare the two paths on equal terms rather than predict a deployment.
- **Persistence and confirms dominate.** Each message is persisted in two queues (a
  quorum queue, then a classic v2 queue) and every hop waits for the broker's confirm
  before acking the previous one; the bare path pays exactly that too, which is why the
  ratio isolates hookbus's own work.
- **One hook is the hardest case for concurrency.** hookbus's deliverer holds at most
  `HOOKBUS_HOOK_IN_FLIGHT` (default 16, the harness's setting too) deliveries of one hook
  at a time, so that a slow endpoint cannot take the capacity of the others; the bare
  deliverer has 256 in flight. With many hooks the deliverer's total (512) applies instead.
- **Latency at low rates** includes the broker's batching of fsyncs and tokio's 1 ms timer
  granularity in the pacing; the p99 of a few-second run rests on a few dozen samples at
  100/s.
- **Memory figures** come from `rabbitmqctl`: the per-queue sum is the queues' own
  processes; the VM growth also counts tables and buffers, and is noisier (other clients of
  the same broker move it too).
";
