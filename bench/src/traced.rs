//! `bench tracing`: what tracing costs in throughput. Three pipelines of one hook each, the
//! same but for their tracing: off, on sampling 1 % of traces, and on sampling every trace,
//! the last two exporting over OTLP/HTTP to a sink in this process that answers 200 (a
//! collector that takes everything at once: what is measured is hookbus's side). The runs
//! take turns between the three, each round starting with another, so that a machine
//! shared with other work disturbs them alike; the table it prints goes into docs/BENCHMARKS.md ("Tracing").
//!
//! Throughput on a small shared machine varies between rounds by more than the cost being
//! measured, so each run's CPU time per event is read too: this process's (it holds the
//! pipelines, the load and the receiver) but for the sink's thread (a collector's work, not
//! hookbus's), and of it what the services' export threads took (encoding and sending
//! spans), which is tracing's alone.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use axum::routing::post;
use hookbus_runtime::telemetry::{TelemetryConfig, EXPORT_THREAD};
use hookbus_tests::pipeline::{metric, Servers};
use hookbus_tests::Pipeline;

use crate::cpu::{self, CpuSample};
use crate::figures::{Runs, Throughput};
use crate::load::{self, Clock};
use crate::pipeline::{ingest, publish, subscribe};
use crate::receiver::Receiver;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Events of each saturated run with the Rust SDK.
    #[arg(long, default_value_t = 10_000)]
    events: usize,
    /// Events of each saturated run through the HTTP ingest API.
    #[arg(long, default_value_t = 5_000)]
    ingest_events: usize,
    /// Runs of each kind per mode (figures quote the median).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=9))]
    repeats: u64,
    /// Measure only this mode (`off`, `1` or `100`, the percentage sampled): to profile
    /// one, e.g. under `perf record` (its costs are then against itself: 0).
    #[arg(long, value_parser = ["off", "1", "100"])]
    only: Option<String>,
}

/// Tracing as one pipeline has it.
struct Mode {
    key: &'static str,
    name: &'static str,
    /// `None`: off.
    ratio: Option<f64>,
}

const MODES: [Mode; 3] = [
    Mode {
        key: "off",
        name: "off",
        ratio: None,
    },
    Mode {
        key: "1",
        name: "on, 1 % sampled",
        ratio: Some(0.01),
    },
    Mode {
        key: "100",
        name: "on, 100 % sampled",
        ratio: Some(1.0),
    },
];

/// A mode's pipeline and what it measured.
struct Measured {
    pipeline: Pipeline,
    publisher: hookbus_producer::Publisher,
    sdk: Vec<Throughput>,
    ingest: Vec<Throughput>,
    /// CPU time per event of each run.
    sdk_cpu: Vec<Cpu>,
    ingest_cpu: Vec<Cpu>,
}

/// One mode's figures, run by run in round order.
struct Row {
    name: &'static str,
    sdk: Vec<Throughput>,
    ingest: Vec<Throughput>,
    dropped: f64,
    sdk_cpu: Vec<Cpu>,
    ingest_cpu: Vec<Cpu>,
}

/// The median over rounds of `cost(mode's, off's)`, each round's runs paired.
fn paired(mode: &[f64], off: &[f64], cost: impl Fn(f64, f64) -> f64) -> f64 {
    let costs: Vec<f64> = mode.iter().zip(off).map(|(&m, &o)| cost(m, o)).collect();
    median(&costs)
}

/// The median of `values`.
fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted[sorted.len() / 2]
}

pub async fn run(args: &Args) -> Result<()> {
    let clock = Clock::start();
    let receiver = Receiver::start(clock).await?;
    let sink = Sink::start().await?;
    let schedule = [Duration::from_secs(1)];
    let modes: Vec<&Mode> = MODES
        .iter()
        .filter(|mode| args.only.as_deref().is_none_or(|key| key == mode.key))
        .collect();
    let mut measured = Vec::new();
    for mode in &modes {
        let telemetry = match mode.ratio {
            None => TelemetryConfig::default(),
            Some(ratio) => TelemetryConfig {
                sampler: "parentbased_traceidratio".into(),
                sampler_arg: ratio,
                ..TelemetryConfig::exporting_to(&sink.endpoint)
            },
        };
        let pipeline = Pipeline::start_traced(
            "bench-tracing",
            Servers::default(),
            &schedule,
            1,
            &telemetry,
        )
        .await;
        let publisher = subscribe(&pipeline, &receiver).await?;
        load::saturated(clock, &receiver, 500, |f| publish(&publisher, f)).await?;
        measured.push(Measured {
            pipeline,
            publisher,
            sdk: Vec::new(),
            ingest: Vec::new(),
            sdk_cpu: Vec::new(),
            ingest_cpu: Vec::new(),
        });
    }
    for round in 0..args.repeats as usize {
        // Each round starts with another mode, so that none is always the one measured
        // right after the same neighbour.
        let turn = (round..round + modes.len()).map(|i| i % modes.len());
        for i in turn {
            let (mode, m) = (modes[i], &mut measured[i]);
            let before = Reading::take();
            let sdk = load::saturated(clock, &receiver, args.events, |f| publish(&m.publisher, f))
                .await?;
            let between = Reading::take();
            let http = load::saturated(clock, &receiver, args.ingest_events, |f| {
                ingest(&m.pipeline, f)
            })
            .await?;
            let after = Reading::take();
            m.sdk_cpu.push(between.since(&before, args.events));
            m.ingest_cpu.push(after.since(&between, args.ingest_events));
            println!(
                "  round {}, tracing {}: SDK {sdk}; ingest {http}",
                round + 1,
                mode.name,
            );
            m.sdk.push(sdk);
            m.ingest.push(http);
        }
    }
    let mut rows = Vec::new();
    for (mode, m) in modes.iter().zip(measured) {
        let mut dropped = 0.0;
        for addr in m.pipeline.addrs() {
            dropped += metric(&m.pipeline.http, addr, "hookbus_trace_spans_dropped_total")
                .await
                .unwrap_or(0.0);
        }
        m.pipeline.stop().await;
        rows.push(Row {
            name: mode.name,
            sdk: m.sdk,
            ingest: m.ingest,
            dropped,
            sdk_cpu: m.sdk_cpu,
            ingest_cpu: m.ingest_cpu,
        });
    }
    // Costs are the median of each round's against the round's `off` run, which ran beside
    // it: the machine's pace drifts between rounds by more than the cost.
    let off = &rows[0];
    let rate = |runs: &[Throughput]| runs.iter().map(Throughput::per_sec).collect::<Vec<_>>();
    let machine = |cpu: &[Cpu]| cpu.iter().map(|c| c.own + c.servers).collect::<Vec<_>>();
    println!("\n| tracing | Rust SDK, msg/s (range) | cost | HTTP ingest, msg/s (range) | cost | spans dropped |");
    println!("|---|---|---|---|---|---|");
    for row in &rows {
        let cells = |runs: &[Throughput], off: &[Throughput]| {
            let cost = paired(&rate(runs), &rate(off), |mode, off| 1.0 - mode / off);
            let runs = Runs::new(runs.to_vec());
            let (low, high) = runs.range();
            format!(
                "{:.0} ({low:.0}–{high:.0}) | {:+.1} %",
                runs.median(),
                cost * 100.0
            )
        };
        println!(
            "| {} | {} | {} | {:.0} |",
            row.name,
            cells(&row.sdk, &off.sdk),
            cells(&row.ingest, &off.ingest),
            row.dropped
        );
    }
    println!("\n| tracing | CPU per event, Rust SDK: hookbus (range) | export | servers | cost | CPU per event, HTTP ingest: hookbus (range) | export | servers | cost |");
    println!("|---|---|---|---|---|---|---|---|---|");
    for row in &rows {
        // The cost is in the machine's CPU per event (this process's and the servers'): on
        // a machine the pipeline saturates, that is what throughput is the inverse of.
        let cells = |cpu: &[Cpu], off: &[Cpu]| {
            let of = |f: fn(&Cpu) -> f64| median(&cpu.iter().map(f).collect::<Vec<_>>());
            let (low, high) = cpu.iter().fold((f64::INFINITY, 0.0f64), |(l, h), c| {
                (l.min(c.own), h.max(c.own))
            });
            let cost = paired(&machine(cpu), &machine(off), |mode, off| mode / off - 1.0);
            format!(
                "{:.0} µs ({low:.0}–{high:.0}) | {:.1} µs | {:.0} µs | {:+.1} %",
                of(|c| c.own),
                of(|c| c.export),
                of(|c| c.servers),
                cost * 100.0,
            )
        };
        println!(
            "| {} | {} | {} |",
            row.name,
            cells(&row.sdk_cpu, &off.sdk_cpu),
            cells(&row.ingest_cpu, &off.ingest_cpu)
        );
    }
    println!(
        "\n{} OTLP requests, {:.1} MiB, reached the sink; {} + {} events per mode and round, {} rounds",
        sink.requests.load(Ordering::Relaxed),
        sink.bytes.load(Ordering::Relaxed) as f64 / (1024.0 * 1024.0),
        args.events,
        args.ingest_events,
        args.repeats
    );
    Ok(())
}

/// An OTLP/HTTP endpoint that takes every export and counts it, decoding nothing. It runs
/// on a thread of its own, [`SINK_THREAD`], so that its CPU time, a collector's and not
/// hookbus's, can be told apart from the rest of this process's.
struct Sink {
    endpoint: String,
    requests: Arc<AtomicU64>,
    bytes: Arc<AtomicU64>,
}

const SINK_THREAD: &str = "otlp-sink";

impl Sink {
    async fn start() -> Result<Sink> {
        let (requests, bytes) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        let counted = (requests.clone(), bytes.clone());
        let app = axum::Router::new().route(
            "/v1/traces",
            post(move |body: axum::body::Bytes| {
                counted.0.fetch_add(1, Ordering::Relaxed);
                counted.1.fetch_add(body.len() as u64, Ordering::Relaxed);
                async {}
            }),
        );
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let endpoint = format!("http://{}", listener.local_addr()?);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        // Serves until the bench's process ends.
        std::thread::Builder::new()
            .name(SINK_THREAD.into())
            .spawn(move || {
                runtime.block_on(async move {
                    let listener = tokio::net::TcpListener::from_std(listener)?;
                    axum::serve(listener, app).await
                })
            })?;
        Ok(Sink {
            endpoint,
            requests,
            bytes,
        })
    }
}

/// CPU time per event of one run, in microseconds: this process's but the sink's thread
/// (the pipeline's services, the load, the receiver), of it the export threads', and the
/// servers' (RabbitMQ, Redis), whose share of the machine the pipeline competes for.
#[derive(Clone, Copy, Debug)]
struct Cpu {
    own: f64,
    export: f64,
    servers: f64,
}

/// The counters a [`Cpu`] is the difference of.
struct Reading {
    own: f64,
    export: f64,
    servers: Option<CpuSample>,
}

impl Reading {
    fn take() -> Reading {
        let pid = std::process::id();
        let named = |name| crate::process::named_threads_cpu_seconds(pid, name);
        Reading {
            own: crate::process::cpu_seconds(pid)
                .zip(named(SINK_THREAD))
                .map_or(f64::NAN, |(all, sink)| all - sink),
            export: named(EXPORT_THREAD).unwrap_or(f64::NAN),
            servers: CpuSample::take(&cpu::Servers::Shared),
        }
    }

    /// What was used since `before`, per event of the `events` of the run.
    fn since(&self, before: &Reading, events: usize) -> Cpu {
        let per_event = |seconds: f64| seconds * 1e6 / events as f64;
        let servers = self
            .servers
            .zip(before.servers)
            .map_or(f64::NAN, |(now, then)| now.servers_seconds_since(then));
        Cpu {
            own: per_event(self.own - before.own),
            export: per_event(self.export - before.export),
            servers: per_event(servers),
        }
    }
}
