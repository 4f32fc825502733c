//! `bench tracing`: what tracing costs in throughput. Three pipelines of one hook each, the
//! same but for their tracing: off, on sampling 1 % of traces, and on sampling every trace,
//! the last two exporting over OTLP/HTTP to a sink in this process that answers 200 (a
//! collector that takes everything at once: what is measured is hookbus's side). The runs
//! take turns between the three, each round starting with another, so that a machine
//! shared with other work disturbs them alike; the table it prints goes into docs/BENCHMARKS.md ("Tracing").
//!
//! Throughput on a small shared machine varies between rounds by more than the cost being
//! measured, so each run's CPU time is read too: this process's (which holds the pipeline,
//! the load, the receiver and the sink) per event, which the machine's other work disturbs
//! far less.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use axum::routing::post;
use hookbus_runtime::telemetry::TelemetryConfig;
use hookbus_tests::pipeline::{metric, Servers};
use hookbus_tests::Pipeline;

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
}

/// Tracing as one pipeline has it.
struct Mode {
    name: &'static str,
    /// `None`: off.
    ratio: Option<f64>,
}

const MODES: [Mode; 3] = [
    Mode {
        name: "off",
        ratio: None,
    },
    Mode {
        name: "on, 1 % sampled",
        ratio: Some(0.01),
    },
    Mode {
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
    /// CPU time of this process per event of each run, in microseconds.
    sdk_cpu: Vec<f64>,
    ingest_cpu: Vec<f64>,
}

/// This process's CPU time, in seconds.
fn own_cpu() -> f64 {
    crate::process::cpu_seconds(std::process::id()).unwrap_or(f64::NAN)
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
    let mut measured = Vec::new();
    for mode in &MODES {
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
        let turn = (round..round + MODES.len()).map(|i| i % MODES.len());
        for i in turn {
            let (mode, m) = (&MODES[i], &mut measured[i]);
            let before = own_cpu();
            let sdk = load::saturated(clock, &receiver, args.events, |f| publish(&m.publisher, f))
                .await?;
            let between = own_cpu();
            let http = load::saturated(clock, &receiver, args.ingest_events, |f| {
                ingest(&m.pipeline, f)
            })
            .await?;
            let after = own_cpu();
            m.sdk_cpu
                .push((between - before) * 1e6 / args.events as f64);
            m.ingest_cpu
                .push((after - between) * 1e6 / args.ingest_events as f64);
            println!(
                "  round {}, tracing {}: SDK {sdk}; ingest {http}",
                round + 1,
                mode.name
            );
            m.sdk.push(sdk);
            m.ingest.push(http);
        }
    }
    let mut rows = Vec::new();
    for (mode, m) in MODES.iter().zip(measured) {
        let mut dropped = 0.0;
        for addr in m.pipeline.addrs() {
            dropped += metric(&m.pipeline.http, addr, "hookbus_trace_spans_dropped_total")
                .await
                .unwrap_or(0.0);
        }
        m.pipeline.stop().await;
        let cpu = (median(&m.sdk_cpu), median(&m.ingest_cpu));
        rows.push((
            mode.name,
            Runs::new(m.sdk),
            Runs::new(m.ingest),
            dropped,
            cpu,
        ));
    }
    let (sdk_off, ingest_off) = (rows[0].1.median(), rows[0].2.median());
    println!("\n| tracing | Rust SDK, msg/s (range) | cost | HTTP ingest, msg/s (range) | cost | spans dropped |");
    println!("|---|---|---|---|---|---|");
    for (name, sdk, ingest, dropped, _) in &rows {
        let cost = |runs: &Runs, off: f64| format!("{:+.1} %", (1.0 - runs.median() / off) * 100.0);
        let range = |runs: &Runs| {
            let (low, high) = runs.range();
            format!("{:.0} ({low:.0}–{high:.0})", runs.median())
        };
        println!(
            "| {name} | {} | {} | {} | {} | {dropped:.0} |",
            range(sdk),
            cost(sdk, sdk_off),
            range(ingest),
            cost(ingest, ingest_off)
        );
    }
    let (sdk_cpu_off, ingest_cpu_off) = rows[0].4;
    println!("\n| tracing | CPU per event, Rust SDK | cost | CPU per event, HTTP ingest | cost |");
    println!("|---|---|---|---|---|");
    for (name, _, _, _, (sdk, ingest)) in &rows {
        let cost = |cpu: f64, off: f64| format!("{:+.1} %", (cpu / off - 1.0) * 100.0);
        println!(
            "| {name} | {sdk:.0} µs | {} | {ingest:.0} µs | {} |",
            cost(*sdk, sdk_cpu_off),
            cost(*ingest, ingest_cpu_off)
        );
    }
    println!(
        "\n{} OTLP requests, {:.1} MiB, reached the sink; {} + {} events per mode, {} rounds",
        sink.requests.load(Ordering::Relaxed),
        sink.bytes.load(Ordering::Relaxed) as f64 / (1024.0 * 1024.0),
        args.events,
        args.ingest_events,
        args.repeats
    );
    Ok(())
}

/// An OTLP/HTTP endpoint that takes every export and counts it, decoding nothing.
struct Sink {
    endpoint: String,
    requests: Arc<AtomicU64>,
    bytes: Arc<AtomicU64>,
}

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
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let endpoint = format!("http://{}", listener.local_addr()?);
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Sink {
            endpoint,
            requests,
            bytes,
        })
    }
}
