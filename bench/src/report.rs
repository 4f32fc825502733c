//! The figures as tables (printed) and as `docs/BENCHMARKS.md` (written), with the machine
//! they were measured on.

use std::fmt::Write;
use std::time::Duration;

use crate::figures::{ms, LatencyRun, Runs};
use crate::load::{PathFigures, Plan};
use crate::machine::Machine;
use crate::pipeline::HookbusFigures;
use crate::plot::Bar;
use crate::queues::{per_queue, QueueFigures};
use crate::scale::Scale;
use crate::scenarios;

pub struct Report<'a> {
    /// The plot's file name, next to the Markdown.
    pub plot: &'a str,
    pub machine: Machine,
    pub plan: &'a Plan,
    pub bare: &'a PathFigures,
    pub hookbus: &'a HookbusFigures,
    pub queues: Option<&'a [QueueFigures]>,
    pub scenarios: &'a scenarios::Figures,
    pub run_time: Duration,
    /// The share of the CPU other programs used during the run.
    pub others_cpu: Option<f64>,
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
        out += "\n";
        out += &self.scenario_tables();
        out += "\n";
        out += &self.targets();
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
        out += "\n## Beyond one hook\n\n";
        out += SCENARIOS_INTRO;
        out += &self.scenario_tables();
        out += "\n### Throughput against the bare limit\n\n";
        out += &self.plot_legend();
        out += PROFILE;
        out += "\n## Targets of issue 8\n\n";
        out += &self.targets();
        out += NOTES;
        out
    }

    fn machine_section(&self) -> String {
        let m = &self.machine;
        let p = self.plan;
        let rates: Vec<String> = p.rates.iter().map(u32::to_string).collect();
        let calibrated = p.saturation.map_or(String::new(), |s| {
            format!(
                " (besides 100 and 1,000, rates at about 10, 50 and 90 % of hookbus's one-hook \
                 saturation, {s:.0} events/s in a calibration run at the start)"
            )
        });
        format!(
            "## This run\n\n\
             - date: {}\n\
             - machine: {} CPUs (`nproc`), {}\n\
             - RabbitMQ {} on {}; Redis on the same machine\n\
             - {}, release build\n\
             - load: saturated runs of {} messages ({} through the HTTP ingest), each made \
             {} times, after {} of warm-up; paced runs of {} s, each made as many times (the \
             run with the median p99 is shown), at {} messages/s{}; {} idle \
             queues per type\n\
             - the whole run took {:.0} s; other programs used {} of the machine's CPU \
             meanwhile\n",
            m.date,
            m.cpus,
            m.cpu_model,
            m.rabbitmq,
            m.erlang,
            m.rustc,
            p.events,
            p.ingest_events,
            p.repeats,
            p.warmup,
            p.paced_secs,
            rates.join(" and "),
            calibrated,
            p.idle_queues,
            self.run_time.as_secs_f64(),
            self.others_cpu
                .map_or("an unknown share".into(), |share| format!(
                    "{:.1} %",
                    share * 100.0
                ))
        )
    }

    fn throughput_table(&self) -> String {
        let bare = self.bare.saturated.median();
        let mut out = String::from(
            "| path (saturated, 256 publishes in flight) | messages per run | runs | \
             median (msg/s) | slowest–fastest (msg/s) | median vs bare | body at receiver \
             (bytes) |\n\
             |---|---:|---:|---:|---:|---:|---:|\n",
        );
        let mut row = |name: &str, runs: &Runs, body: String| {
            let _ = writeln!(
                out,
                "| {name} | {} | {} | {:.0} | {} | {:.2}× | {body} |",
                runs.messages(),
                runs.count(),
                runs.median(),
                range(runs),
                runs.median() / bare
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
        row(
            "hookbus, Rust SDK, `HOOKBUS_HOOK_IN_FLIGHT=256` (default 64)",
            &self.hookbus.wide,
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
            "hookbus / bare (medians): saturated throughput **{:.2}×** (Rust SDK), {:.2}× (HTTP ingest), \
             {:.2}× (Rust SDK, 256 deliveries of the hook in flight)",
            hookbus.saturated.median() / bare.saturated.median(),
            self.hookbus.ingest.median() / bare.saturated.median(),
            self.hookbus.wide.median() / bare.saturated.median()
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
        let limit = self.hookbus.wide.median() / hookbus.saturated.median() - 1.0;
        let _ = write!(
            out,
            ".\n\nRaising the deliverer's per-hook limit from 64 to 256 deliveries in flight \
             changed the one-hook throughput by {:+.0} %.\n",
            limit * 100.0
        );
        out
    }
}

fn latency_ratio(
    bare: &LatencyRun,
    hookbus: &LatencyRun,
    pick: fn(&LatencyRun) -> Duration,
) -> String {
    format!(
        "{:.2}×",
        pick(hookbus).as_secs_f64() / pick(bare).as_secs_f64()
    )
}

/// `slowest–fastest` of repeated runs, messages per second.
fn range(runs: &Runs) -> String {
    let (slowest, fastest) = runs.range();
    format!("{slowest:.0}–{fastest:.0}")
}

fn queue_table(queues: &[QueueFigures]) -> String {
    let mut out = String::from(
        "| queue type | one queue: confirmed publish + acked consume, median (slowest–fastest), \
         msg/s | idle queues | declare (s) | delete (s) | memory per idle queue \
         (`list_queues memory`) | Erlang VM growth per idle queue |\n\
         |---|---:|---:|---:|---:|---:|---:|\n",
    );
    for q in queues {
        let idle = &q.idle;
        let _ = writeln!(
            out,
            "| {} | {:.0} ({}) | {} | {:.1} | {:.1} | {} | {} |",
            q.kind.label(),
            q.throughput.median(),
            range(&q.throughput),
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
    let throughput = if quorum.throughput.median() > classic.throughput.median() {
        "Through one busy queue quorum was the faster here, so throughput does not argue for \
         classic v2: the choice rests on what thousands of mostly idle queues cost."
    } else {
        "Through one busy queue classic v2 was the faster here, and it also costs less idle."
    };
    format!(
        "Quorum relative to classic v2, measured here: throughput through one queue {} \
         (medians), memory per idle queue {} (`list_queues`) and {} (VM growth), declaration \
         time {}.\n\n\
         **Chosen: classic v2 for per-hook queues** (hookbus's `Topology::declare_hook`), \
         quorum for the events and dead-letter queues. hookbus has one queue per hook, so the \
         per-queue cost of an idle queue is what grows with the number of hooks; a quorum \
         queue is a Raft group (its own process, log and WAL traffic) even when idle. \
         {throughput} The price of classic v2 is that a per-hook backlog lives on one node \
         only: it survives a broker restart (durable queue, persistent messages) but not the \
         loss of that node's disk.\n",
        ratio(|q| Some(q.throughput.median())),
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
# options: --events N  --ingest-events N  --repeats N  --rates 100,1000
#          --saturation-shares 0.1,0.5,0.9  --skip-calibration
#          --paced-secs S  --idle-queues N  --skip-queues  --out PATH
#          --skip-fanout  --skip-scale  --scale-hooks 10,1000,10000
#          --skip-scaling  --scaling-events N  --skip-isolation  --skip-storm
```

It needs the RabbitMQ at 127.0.0.1:5672 (guest/guest) and the Redis at 127.0.0.1:6379 of
the test setup, takes a few minutes on two cores (under 10), writes the plot
`benchmarks.png` next to this file, and deletes every queue and Redis
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
  `benchSentNs`), all on one monotonic clock in one process. Each paced run is made as many
  times as the saturated ones, and the one with the median p99 is shown: a single broker
  pause in a run is enough to make its p99.

";

const NOTES: &str = "
## Notes

- **Two cores for everything.** RabbitMQ, Redis, the three hookbus services, the load
  generator and the receiver share two cores, and a saturated run uses both: the broker
  takes about one, this process (services, load and receiver together) the other. In
  production the broker has machines of its own. The figures are this machine's ceiling
  for the whole system, and compare the two paths on equal terms rather than predict a
  deployment. The run reports how much CPU other programs took meanwhile: a run where
  that is more than a few percent should be discarded. Even on an idle machine (a virtual
  one) the medians of two runs differ by up to a quarter, and so does the ratio: compare
  figures of the same run, and read the ratio as a half-to-two-thirds rather than to two
  decimals.
- **What both paths pay.** Each message is persisted in two queues (a quorum queue, then a
  classic v2 queue) and every hop waits for the broker's confirm before it acks the
  previous one; the bare path does exactly that and no more, so the ratio is the cost of
  hookbus's own work.
- **What hookbus adds per message**, all on the same two cores: the payload put in Logto's
  order and written as JSON once at publish; the version envelope and the event's few
  fields read by the router and the delivery's by the deliverer (the payload itself is
  copied, not parsed); larger messages (the delivery envelope; Logto's `event`,
  `createdAt` and `hookId` in the body), a topic and a direct exchange instead of the
  default one, two signatures, metrics, and a delivery journal record per attempt written
  to Redis in batches (Redis shows about a tenth of a core during the saturated runs).
- **One hook and the per-hook limit.** The deliverer runs at most
  `HOOKBUS_HOOK_IN_FLIGHT` (default 64, the harness's setting too) deliveries of one hook
  at once, with a prefetch of twice that, so that a slow endpoint cannot take the others'
  capacity; the bare deliverer has 256. The row with 256 in flight shows whether the limit
  or the CPU is what holds the throughput.
- **The HTTP ingest row** also pays for the client side of every request (reqwest, in
  this process), which a real producer's machine would carry.
- **Latency tails vary between runs** by an order of magnitude on this machine: the
  broker pauses for tens to hundreds of milliseconds now and then (after a burst, while
  queues are deleted, on a shared disk), and whichever path is running pays. Each path
  starts after a 5 s pause and measures its paced runs before its saturated ones to keep
  such pauses out; the p50 is stable, the p99 and max should be read as indications. The
  pacing itself has tokio's 1 ms timer granularity.
- **Memory figures** come from `rabbitmqctl`: `list_queues memory` is the queues' own
  processes; the VM growth (`erlang:memory(total)`) also counts tables and buffers, and
  other clients of the broker move it too. The broker does not give all the memory of
  deleted quorum queues back at once, so each figure is a difference within one run.
  `rabbitmqctl status` took about a minute while a thousand quorum queues existed, which
  is why the VM memory is read with `rabbitmqctl eval`.
";

/// A target of issue 8: its verdict in words.
fn verdict(met: bool) -> &'static str {
    if met {
        "**met**"
    } else {
        "**missed**"
    }
}

impl Report<'_> {
    fn bare(&self) -> f64 {
        self.bare.saturated.median()
    }

    /// Fan-out, scale, scaling, isolation and storm, each throughput also against the bare
    /// limit of this run.
    fn scenario_tables(&self) -> String {
        let s = self.scenarios;
        let bare = self.bare();
        let mut out = String::new();
        if let Some(fanout) = &s.fanout {
            let _ = writeln!(
                out,
                "| fan-out: one event to {} hooks, one deliverer | deliveries per run | runs | \
                 median (deliveries/s) | slowest–fastest | median vs bare |\n\
                 |---|---:|---:|---:|---:|---:|\n\
                 | hookbus, Rust SDK | {} | {} | {:.0} | {} | {:.2}× |",
                scenarios::FANOUT,
                fanout.messages(),
                fanout.count(),
                fanout.median(),
                range(fanout),
                fanout.median() / bare
            );
            out += "\n";
        }
        if let Some(scale) = &s.scale {
            out += &scale_table(scale, bare);
        }
        if let Some(points) = &s.scaling {
            out += "| deliverers (50 ms receiver, one hook, 16 in flight per deliverer) | \
                    deliveries | deliveries/s | vs one deliverer | vs bare |\n\
                    |---:|---:|---:|---:|---:|\n";
            let one = points.first().map_or(1.0, |p| p.run.per_sec());
            for p in points {
                let _ = writeln!(
                    out,
                    "| {} | {} | {:.0} | {:.2}× | {:.2}× |",
                    p.deliverers,
                    p.run.messages,
                    p.run.per_sec(),
                    p.run.per_sec() / one,
                    p.run.per_sec() / bare
                );
            }
            out += "\n";
        }
        if let Some(iso) = &s.isolation {
            let _ = writeln!(
                out,
                "| isolation: good hooks' deliveries | saturated: deliveries | deliveries/s | \
                 vs bare | p99 (ms) | paced at {} events/s ({} deliveries/s): p50 (ms) | p99 \
                 (ms) | max (ms) |\n|---|---:|---:|---:|---:|---:|---:|---:|",
                scenarios::ISOLATION_RATE,
                scenarios::ISOLATION_RATE as usize * scenarios::GOOD_HOOKS
            );
            for (name, run) in [
                (
                    format!("{} good hooks alone", scenarios::GOOD_HOOKS),
                    &iso.alone,
                ),
                (
                    format!("{} good hooks next to one hanging", scenarios::GOOD_HOOKS),
                    &iso.with_hang,
                ),
            ] {
                let _ = writeln!(
                    out,
                    "| {name} | {} | {:.0} | {:.2}× | {:.2} | {:.2} | {:.2} | {:.2} |",
                    run.run.messages,
                    run.run.per_sec(),
                    run.run.per_sec() / bare,
                    ms(run.latency.p99),
                    ms(run.paced.p50),
                    ms(run.paced.p99),
                    ms(run.paced.max)
                );
            }
            let _ = writeln!(
                out,
                "\nNext to the hanging hook the good hooks kept {:.0} % of their saturated \
                 throughput; their p99 was {:.2}× that without it when paced, {:.2}× when \
                 saturated.",
                iso.with_hang.run.per_sec() / iso.alone.run.per_sec() * 100.0,
                iso.with_hang.paced.p99.as_secs_f64() / iso.alone.paced.p99.as_secs_f64(),
                iso.with_hang.latency.p99.as_secs_f64() / iso.alone.latency.p99.as_secs_f64()
            );
            out += "\n";
        }
        if let Some(storm) = &s.storm {
            let _ = writeln!(
                out,
                "| retry storm (retry after {:.0} s) | events | first attempts failed | \
                 delivered/s | vs bare | backlog drained after the last publish (s) |\n\
                 |---|---:|---:|---:|---:|---:|\n\
                 | one hook, one delivery in five fails once | {} | {} | {:.0} | {:.2}× | {:.2} |",
                storm.schedule.as_secs_f64(),
                storm.run.messages,
                storm.failed_first,
                storm.run.per_sec(),
                storm.run.per_sec() / bare,
                storm.drain.as_secs_f64()
            );
        }
        out
    }

    /// Why the p99 at `rate` is more than twice the bare path's: how close each path runs to
    /// its own saturation there.
    fn latency_gap(&self, rate: u32) -> String {
        let bare = f64::from(rate) / self.bare.saturated.median();
        let hookbus = f64::from(rate) / self.hookbus.sdk.saturated.median();
        format!(
            "  Where the time goes: at {rate}/s the bare path runs at {:.0} % of its saturated \
             throughput and hookbus at {:.0} % of its own, and a queue's waiting time grows as \
             1 / (1 − utilisation): the same rate is a heavier load for the path with the lower \
             ceiling. The other cause is a broker pause landing in one path's runs (see the \
             notes on latency tails): look at that row's max. Below that, hookbus's own work \
             per message (a few tens of microseconds) is lost in the broker's. What would close \
             it is what raises hookbus's ceiling (see Where the time goes).\n",
            bare * 100.0,
            hookbus * 100.0
        )
    }

    /// Each target of issue 8 that this run measured, met or missed.
    fn targets(&self) -> String {
        let mut out = String::new();
        let one = self.hookbus.sdk.saturated.median() / self.bare();
        let _ = writeln!(
            out,
            "- One hook at least 70 % of the bare limit: {:.0} %, {}.",
            one * 100.0,
            verdict(one >= 0.70)
        );
        if one < 0.70 {
            out += GAP_ONE_HOOK;
        }
        // A path that delivered less than it was offered was past its saturation there: its
        // latency is a growing queue, and the rate is not "below saturation".
        let kept_up = |run: &LatencyRun| run.achieved_per_sec >= 0.98 * f64::from(run.rate);
        let (below, beyond): (Vec<_>, Vec<_>) = self
            .bare
            .paced
            .iter()
            .zip(&self.hookbus.sdk.paced)
            .partition(|(b, h)| kept_up(b) && kept_up(h));
        for (b, h) in &beyond {
            let _ = writeln!(
                out,
                "- At {}/s a path did not keep up (bare {:.0}/s, hookbus {:.0}/s arrived): past \
                 its saturation in this run, so that rate is left out of the next target.",
                b.rate, b.achieved_per_sec, h.achieved_per_sec
            );
        }
        let ratios: Vec<(u32, f64)> = below
            .iter()
            .map(|(b, h)| (b.rate, h.p99.as_secs_f64() / b.p99.as_secs_f64()))
            .collect();
        if let Some(&(rate, worst)) = ratios.iter().max_by(|a, b| a.1.total_cmp(&b.1)) {
            let within: Vec<String> = ratios
                .iter()
                .filter(|(_, r)| *r <= 2.0)
                .map(|(rate, _)| rate.to_string())
                .collect();
            let _ =
                writeln!(
                out,
                "- p99 below saturation at most twice the bare path's: at worst {worst:.2}× (at \
                 {rate}/s), {}; within 2× at {} msg/s.",
                verdict(worst <= 2.0),
                if within.is_empty() { "none".into() } else { within.join(", ") }
            );
            if worst > 2.0 {
                out += &self.latency_gap(rate);
            }
        }
        let s = self.scenarios;
        if let Some(scale) = &s.scale {
            out += &scale_target(scale);
        }
        if let Some(points) = &s.scaling {
            if let (Some(one), Some(last)) = (points.first(), points.last()) {
                let ratio = last.run.per_sec() / one.run.per_sec();
                let _ = writeln!(
                    out,
                    "- {} deliverers at least 3.5 times one (50 ms receiver): {ratio:.2}×, {}.",
                    last.deliverers,
                    verdict(ratio >= 3.5)
                );
                if ratio < 3.5 {
                    out += GAP_SCALING;
                }
            }
        }
        if let Some(iso) = &s.isolation {
            let kept = iso.with_hang.run.per_sec() / iso.alone.run.per_sec();
            let _ = writeln!(
                out,
                "- Isolation: good hooks keep at least 90 % of their throughput: {:.0} %, {} \
                 (their paced p99 next to the hanging hook: {:.2}× that without it).",
                kept * 100.0,
                verdict(kept >= 0.90),
                iso.with_hang.paced.p99.as_secs_f64() / iso.alone.paced.p99.as_secs_f64()
            );
            if kept < 0.90 {
                out += GAP_ISOLATION;
            }
        }
        out
    }
}

const SCENARIOS_INTRO: &str = "Each scenario runs on a pipeline of its own (producer, router and \
deliverers in this process, under a prefix of their own), events published with the Rust SDK as \
fast as 256 publishes in flight allow, the time from the first publish to the receiver's last \
arrival. \"vs bare\" divides by the bare limit of the same run (table above).

- **Fan-out**: 10 hooks subscribed to `PostSignIn`, all pointing at the receiver; every event is \
delivered 10 times.
- **Scale of configuration**: the router in a process of its own (this executable re-run as \
`bench service router`, a fresh process at each size), with one hook subscribed to the published \
event and the rest written directly into the hook store (`HookStore::insert`, the shape of a hook \
created through the API): enabled, subscribed to `User.Created`, which is never published, and \
pointing at a closed port. No deliverer runs meanwhile: a deliverer consumes the queue of every \
enabled hook, and 10,000 consumers do not fit next to the rest on this machine's broker; the \
router, whose cost is what must not grow, is timed alone, from the first publish until its \
`hookbus_router_events_total` has counted every event. Its CPU time per event is the CPU time of \
its threads (`/proc/<pid>/task/*/schedstat`) over all the runs of a size, divided by their \
events; its resident memory (`VmRSS`) is read once it holds the hooks, before any event. The \
hook cache's heap (`HookSnapshot::new` over the stored hooks, counted by a counting allocator) \
is what the router and every deliverer hold of the configuration. A deliverer's memory is read \
the same way, in a process of its own consuming 10 and then 1,010 idle hooks' queues.
- **Deliverer scaling**: one hook whose endpoint takes 50 ms per request; each deliverer holds at \
most 16 deliveries of a hook at once (`HOOKBUS_HOOK_IN_FLIGHT=16`; the default is 64, which would \
make four deliverers carry 5,120 deliveries/s, more than this machine's two cores do next to the \
broker, and measure the machine rather than the scaling), so one deliverer tops out at 320 \
deliveries/s and adding deliverers is what adds concurrency; 1,000 events per deliverer.
- **Isolation**: 4 good hooks and a fifth good one whose deliveries are not counted, paced at \
250 events/s for 5 s (latency below saturation), then saturated; then the fifth hook is deleted \
and one whose endpoint never answers (the deliverer gives up after its 2 s attempt timeout and \
retries) takes its place in the same pipeline, and the runs are repeated. Both phases route five \
deliveries per event, so only the hanging differs. Throughput and latency are the 4 good hooks' \
deliveries.
- **Retry storm**: one hook whose endpoint answers 500 to the first attempt of every fifth event \
(by `webhook-id`), retry schedule 1 s then 2 s; the run ends when every event has been delivered.

";

impl Report<'_> {
    /// Every throughput figure of the run as a ratio to the bare limit, in plot order.
    pub fn bars(&self) -> Vec<Bar> {
        let bare = self.bare();
        let mut bars = Vec::new();
        let mut bar = |label: String, per_sec: f64, group: usize| {
            bars.push(Bar {
                label,
                ratio: per_sec / bare,
                group,
            })
        };
        bar("bare broker".into(), bare, 0);
        bar(
            "one hook, Rust SDK".into(),
            self.hookbus.sdk.saturated.median(),
            1,
        );
        bar(
            "one hook, HTTP ingest".into(),
            self.hookbus.ingest.median(),
            1,
        );
        bar(
            "one hook, 256 in flight".into(),
            self.hookbus.wide.median(),
            1,
        );
        let s = self.scenarios;
        if let Some(fanout) = &s.fanout {
            bar(
                format!("fan-out to {} hooks (deliveries/s)", scenarios::FANOUT),
                fanout.median(),
                2,
            );
        }
        for p in s.scale.iter().flat_map(|s| &s.points) {
            bar(
                format!("router process, {} hooks (events/s)", p.hooks),
                p.router.median(),
                3,
            );
        }
        for p in s.scaling.iter().flatten() {
            bar(
                format!("{} deliverer(s), 50 ms receiver", p.deliverers),
                p.run.per_sec(),
                4,
            );
        }
        if let Some(iso) = &s.isolation {
            bar("good hooks alone".into(), iso.alone.run.per_sec(), 5);
            bar(
                "good hooks next to a hanging one".into(),
                iso.with_hang.run.per_sec(),
                5,
            );
        }
        if let Some(storm) = &s.storm {
            bar("retry storm".into(), storm.run.per_sec(), 6);
        }
        bars
    }

    fn plot_legend(&self) -> String {
        format!(
            "![Throughput of each path and scenario as a ratio to the bare limit]({})\n\n\
             Each bar is a throughput of this run divided by the bare limit of the same run (the \
             black line, 1.0); the figures are those of the tables above.\n",
            self.plot
        )
    }
}

const GAP_ONE_HOOK: &str = "  Where the time goes: see the section of that name. What \
remains is mostly shared with the bare path (the AMQP client, HTTP, the kernel), and the spread \
between runs of one path is as large as the gap.\n";

/// Measured by hand on 2026-11-25 (a profile is not something a benchmark run can take of
/// itself); see `PROFILE` in docs/BENCHMARKS.md's "Where the time goes".
const PROFILE: &str = "
## Where the time goes

A profile of the saturated one-hook run, [flamegraph.svg](flamegraph.svg): `perf record -F 999 \
-g` for 10 s of the bench process (producer, router, deliverer, load and receiver), built with \
frame pointers (`RUSTFLAGS=-Cforce-frame-pointers=yes cargo build --profile profiling -p \
hookbus-bench`), taken on 2026-11-25 on this machine with this build. Shares of the process's \
samples, each counting what it calls:

| where | share |
|---|---:|
| the deliverer's `process` (consume → attempt → settle), HTTP client included | 21.0 % |
| of which rendering and signing the body (`attempt::prepare`) | 2.6 % |
| of which the delivery log record (`log_record`) | 1.8 % |
| the journal's batched Redis writes | 1.3 % |
| the router (consume → fan-out → confirmed publish → ack) | 8.2 % |
| the SDK's `publish` | 6.7 % |
| of which `Event::new` (the payload put in Logto's order, written as JSON once) | 3.5 % |
| lapin's I/O loop (AMQP framing and socket I/O, all connections) | 19.3 % |
| hyper (the deliverer's client and the bench's receiver) | 20.9 % |
| the allocator (mimalloc) | 12.1 % |
| the kernel (loopback TCP, scheduling) | 32.8 % |

Meanwhile RabbitMQ takes about one of the two cores and Redis about a tenth of one \
(`/proc/<pid>/stat`, sampled every second during a run).

What changed on the one-hook path since the first runs of this benchmark, each measured on \
this machine with the quick run `--skip-queues --skip-fanout --skip-scale --skip-scaling \
--skip-isolation --skip-storm` (3 saturated runs of 20,000 messages per path), hookbus \
(Rust SDK) against the bare path of the same run, one change after the other:

| change | one hook vs bare |
|---|---:|
| before (per-hook prefetch = the per-hook limit, journal batches of what was queued) | 0.49× |
| the payload carried as JSON text from the producer on (`RawPayload`): the router and the deliverer neither parse nor re-encode it; the version envelope read without buffering the message (`wire::decode_v1`) | 0.56× |
| mimalloc in the services (and the bench): the bare path gained about as much (11,486 → 12,122 msg/s) | 0.53× |
| the deliverer's prefetch twice its per-hook limit, so a finished delivery's slot does not wait for an ack's round trip | 0.64× |
| journal batches that wait up to 50 ms to fill, up to 1,024 records | 0.69× |
| 100 ms, and only the newest 500 records of a busy hook written (the rest would be trimmed at once; all are counted) | 0.71× |
| the SDK's channel handle shared through an `Arc` instead of a lapin `Channel` clone per publish | 0.75× |
| the default per-hook limit raised from 16 to 64 deliveries at once (`HOOKBUS_HOOK_IN_FLIGHT`): with 16, one hook's deliveries queued behind the limit from about half of saturation on (p99 2.7× the bare path's at 4,430/s; 1.7× with 64) | 0.80× |

An experiment with the journal switched off (not a setting) gave 0.77× against 0.60× with the \
journal of the time: the delivery log was the largest single cost, and most of it was Redis \
round trips and commands per small batch. mimalloc costs memory: a deliverer process is 35.5 \
MiB resident with 10 hooks and 62.0 MiB with 1,010 (consuming their queues) under mimalloc, \
19.5 and 36.5 MiB under glibc's allocator (one reading each, 2026-11-25); the throughput gain \
(about 12 % for hookbus, 6 % for the bare path) was judged worth it.

What would take the rest: the router's confirms and the deliverer's acks in batches \
(`multiple`), fewer copies of each body (AMQP frame, then HTTP body, then log record), and a \
cheaper log record (it validates the body it copies).
";

const GAP_ROUTER: &str = "  Where the time goes: the router finds an event's subscribers \
through the hook cache's index by event (`HookSnapshot::subscribers`), so it visits no \
non-matching hook per event, and the cache does not reload while the configuration does not \
change. A difference in CPU time per event is then the router's background work (the cache's \
version check, the depth exporter) spread over the run, or the spread between runs.\n";

const GAP_SCALING: &str = "  Where the time goes: with 4 deliverers the machine carries four \
times the deliveries on the same two cores (broker included), so the run becomes CPU-bound before \
the 50 ms receiver is the limit. What would close it: deliverers on machines of their own (as \
deployed), or the per-message reductions above.\n";

const GAP_ISOLATION: &str =
    "  Where the time goes: the hanging hook's attempts only wait (16 at a \
time, the per-hook limit, for the 2 s attempt timeout), but each failed attempt goes through a \
retry tier and back and is journalled, and its dead letters are published, all on the same two \
cores as the good hooks' saturated traffic (broker included); the spread between runs of this \
scenario is up to a quarter. What would close it: deliverers and broker with cores of their own, \
and a shorter attempt timeout or earlier auto-disable for an endpoint that keeps timing out.\n";

fn mib(bytes: u64) -> f64 {
    bytes as f64 / 1048576.0
}

/// The router process at each size of configuration, and what 1,000 idle hooks cost the
/// router and a deliverer in memory.
fn scale_table(scale: &Scale, bare: f64) -> String {
    let mut out = String::from(
        "| hooks configured (one matches) | events per run | runs | router process, median \
         (events/s) | slowest–fastest | vs the smallest configuration | vs bare | router CPU \
         per event (µs) | vs the smallest configuration | router resident memory | hook \
         cache (`HookSnapshot`, heap) | stored size of one idle hook |\n\
         |---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    let first = scale.points.first();
    let first_rate = first.map_or(1.0, |p| p.router.median());
    let first_cpu = first.and_then(|p| p.router_cpu_us);
    let or_na = |v: Option<String>| v.unwrap_or_else(|| "n/a".into());
    for p in &scale.points {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {:.0} | {} | {:.2}× | {:.2}× | {} | {} | {} | {:.2} MiB | {} B |",
            p.hooks,
            p.router.messages(),
            p.router.count(),
            p.router.median(),
            range(&p.router),
            p.router.median() / first_rate,
            p.router.median() / bare,
            or_na(p.router_cpu_us.map(|us| format!("{us:.1}"))),
            or_na(
                p.router_cpu_us
                    .zip(first_cpu)
                    .map(|(us, first)| format!("{:.2}×", us / first))
            ),
            or_na(p.router_rss.map(|b| format!("{:.1} MiB", mib(b)))),
            p.cache_bytes as f64 / 1048576.0,
            p.stored_bytes
        );
    }
    out += "\nMemory per 1,000 idle hooks";
    if let (Some(small), Some(big)) = (scale.points.first(), scale.points.last()) {
        let per_1000 = |a: f64, b: f64| (b - a) * 1000.0 / (big.hooks - small.hooks) as f64;
        if big.hooks > small.hooks {
            let cache_growth = (big.cache_bytes - small.cache_bytes) as f64 / 1048576.0;
            match (small.router_rss, big.router_rss) {
                // Resident memory also holds what the allocator keeps of freed memory (the
                // hooks' JSON while loading them): a growth below the cache's own is noise.
                (Some(a), Some(b)) if mib(b) - mib(a) < cache_growth => {
                    let _ = write!(
                        out,
                        ": the router process, not measurable from its resident memory \
                         ({:.1} MiB at {} hooks, {:.1} MiB at {}, a fresh process at each size: \
                         less than its hook cache grew, {cache_growth:.1} MiB, so within what \
                         the allocator keeps of freed memory);",
                        mib(a),
                        small.hooks,
                        mib(b),
                        big.hooks
                    );
                }
                (Some(a), Some(b)) => {
                    let _ = write!(
                        out,
                        ": the router process, {:.2} MiB resident (from {} to {} hooks, a fresh \
                         process at each size);",
                        per_1000(mib(a), mib(b)),
                        small.hooks,
                        big.hooks
                    );
                }
                _ => {}
            }
            let _ = write!(
                out,
                " the hook cache alone, {:.2} MiB of heap, held once by the router and once by \
                 every deliverer;",
                per_1000(small.cache_bytes as f64, big.cache_bytes as f64) / 1048576.0
            );
        }
    }
    if let [(few, Some(a)), (many, Some(b))] = scale.deliverer_rss[..] {
        let _ = write!(
            out,
            " a deliverer process, {:.2} MiB resident ({:.1} MiB consuming {few} hooks' queues, \
             {:.1} MiB consuming {many}; a fresh process each time; each enabled hook is one \
             consumer on the deliverer's channel).",
            (mib(b) - mib(a)) * 1000.0 / (many - few) as f64,
            mib(a),
            mib(b)
        );
    }
    out += "\n\n";
    out
}

/// The verdict on a flat router cost per event: the router process's CPU time per event,
/// from the smallest to the largest configuration.
fn scale_target(scale: &Scale) -> String {
    let (Some(small), Some(big)) = (scale.points.first(), scale.points.last()) else {
        return String::new();
    };
    let rate = big.router.median() / small.router.median();
    let Some((a, b)) = small.router_cpu_us.zip(big.router_cpu_us) else {
        return format!(
            "- Router cost per event flat within 10 % from {} to {} hooks: not measured (no \
             CPU time from /proc); events/s at {} hooks are {:.0} % of those at {}.\n",
            small.hooks,
            big.hooks,
            big.hooks,
            rate * 100.0,
            small.hooks
        );
    };
    let change = b / a;
    let mut out = format!(
        "- Router cost per event flat within 10 % from {} to {} hooks: the router process's CPU \
         time per event is {b:.1} µs at {} hooks against {a:.1} µs at {}, {:.2}×, {} \
         (its events/s: {:.0} % of those at {}).\n",
        small.hooks,
        big.hooks,
        big.hooks,
        small.hooks,
        change,
        verdict(change <= 1.10),
        rate * 100.0,
        small.hooks
    );
    if change > 1.10 {
        out += GAP_ROUTER;
    } else if change < 0.90 {
        out += "  It did not grow; that it fell by more than 10 % is the spread between runs \
                (the smaller configuration's runs are measured first, right after the router \
                started), not less work per event.\n";
    }
    out
}

#[cfg(test)]
mod tests;
