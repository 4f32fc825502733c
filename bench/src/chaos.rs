//! `bench chaos`: the chaos soak from the command line, `cargo run --release -p hookbus-bench
//! -- chaos --events 1000000 --rate 1000/s`. The soak itself (cluster, services, faults,
//! reconciliation) is `hookbus_tests::chaos`, shared with the short integration test; this
//! is its flags, its progress bar, and its summary (printed, and written as JSON for
//! `docs/RELIABILITY.md`).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use hookbus_tests::chaos::{self, Fault, Launcher, Plan, Summary};

use crate::process::SERVICE;
use crate::progress;

/// The faults of a default run, in order, spread evenly over the publishing period.
const DEFAULT_FAULTS: &str = "deliverer-kill,node-kill,router-kill,redis-restart,deliverer-kill,node-down-long,router-kill,node-kill";

/// `bench chaos`'s flags.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Events published (half through the HTTP ingest, half through the Rust SDK).
    #[arg(long, default_value_t = 100_000)]
    events: usize,
    /// Total publish rate, events per second (`1000` or `1000/s`).
    #[arg(long, default_value = "1000/s", value_parser = parse_rate)]
    rate: f64,
    /// The faults, in order: router-kill, deliverer-kill, node-kill, node-down-long,
    /// redis-restart.
    #[arg(long, value_delimiter = ',', default_value = DEFAULT_FAULTS, value_parser = Fault::parse)]
    faults: Vec<Fault>,
    #[arg(long, default_value_t = 2)]
    routers: usize,
    #[arg(long, default_value_t = 3)]
    deliverers: usize,
    /// Seconds a killed router or deliverer stays down.
    #[arg(long, default_value_t = 3)]
    process_down: u64,
    /// Seconds a killed node stays down (node-kill).
    #[arg(long, default_value_t = 10)]
    node_down: u64,
    /// Seconds a node stays down (node-down-long).
    #[arg(long, default_value_t = 90)]
    long_down: u64,
    /// Milliseconds the slow hook's endpoint takes.
    #[arg(long, default_value_t = 50)]
    slow_ms: u64,
    /// Seconds after the first publish when the failing hook starts answering 500.
    #[arg(long, default_value_t = 20)]
    failing_at: u64,
    /// Seconds it answers 500 (then 204).
    #[arg(long, default_value_t = 30)]
    failing_for: u64,
    /// Seconds every delivery may take after the last publish and fault.
    #[arg(long, default_value_t = 600)]
    drain: u64,
    /// The seed of the random choices (which router, deliverer, node); the time if unset.
    #[arg(long)]
    seed: Option<u64>,
    /// Where the JSON summary is written.
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/../target/chaos-summary.json"))]
    out: PathBuf,
}

fn parse_rate(s: &str) -> Result<f64, String> {
    let n = s.trim().trim_end_matches("/s");
    match n.parse::<f64>() {
        Ok(r) if r > 0.0 => Ok(r),
        _ => Err(format!("`{s}`: a rate is events per second, as `1000/s`")),
    }
}

pub async fn main(args: Args) -> Result<()> {
    let seed = args.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64)
    });
    let log_dir = args.out.with_file_name(format!("chaos-logs-{seed}"));
    let bar = progress::bar_with_message(args.events as u64, "events accepted");
    let on_progress = {
        let bar = bar.clone();
        Arc::new(move |p: &chaos::Progress| {
            bar.set_position(p.accepted);
            bar.set_message(p.phase.clone());
        })
    };
    let plan = Plan {
        events: args.events,
        rate: args.rate,
        faults: args.faults.clone(),
        routers: args.routers,
        deliverers: args.deliverers,
        launcher: Launcher {
            program: std::env::current_exe().context("locating the bench executable")?,
            args: vec![SERVICE.to_owned()],
        },
        log_dir: log_dir.clone(),
        process_down: Duration::from_secs(args.process_down),
        node_down: Duration::from_secs(args.node_down),
        long_down: Duration::from_secs(args.long_down),
        slow_delay: Duration::from_millis(args.slow_ms),
        failing: (
            Duration::from_secs(args.failing_at),
            Duration::from_secs(args.failing_for),
        ),
        drain: Duration::from_secs(args.drain),
        seed,
        progress: Some(on_progress),
    };
    println!(
        "chaos: {} events at {}/s, faults {:?}; service logs in {}",
        args.events,
        args.rate,
        args.faults,
        log_dir.display()
    );
    let summary = chaos::run(&plan).await.map_err(|e| anyhow!(e))?;
    bar.finish_and_clear();
    let date = time::OffsetDateTime::now_utc().date().to_string();
    let mut json = serde_json::to_value(&summary)?;
    json["date"] = date.clone().into();
    let text = serde_json::to_string_pretty(&json)?;
    println!("{text}");
    std::fs::write(&args.out, &text).with_context(|| format!("writing {}", args.out.display()))?;
    println!("\n{}", row(&date, &summary));
    println!("summary written to {}", args.out.display());
    if summary.lost > 0 {
        return Err(anyhow!("{} accepted deliveries lost", summary.lost));
    }
    Ok(())
}

/// The run as a row of `docs/RELIABILITY.md`'s table.
fn row(date: &str, s: &Summary) -> String {
    let ms = |v: Option<f64>| v.map_or("–".to_owned(), |v| format!("{v:.0}"));
    let secs = |v: Option<f64>| v.map_or("never".to_owned(), |v| format!("{v:.1}"));
    let faults: Vec<String> = s
        .faults
        .iter()
        .map(|f| {
            format!(
                "{:?} {}: ingest {} s, ready {} s, {} duplicates after",
                f.kind,
                f.target,
                secs(f.ingest_back_s),
                secs(f.ready_back_s),
                f.duplicates_after
            )
        })
        .collect();
    format!(
        "| {date} | {} | {}/s | {} | {} | {:.3} % | {} / {} | {} |",
        s.accepted,
        s.rate,
        s.faults.len(),
        s.lost,
        s.duplicate_pct,
        ms(s.late_p99_calm_ms),
        ms(s.late_p99_fault_ms),
        faults.join("; ")
    )
}
