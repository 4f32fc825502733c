//! `bench`: how fast hookbus delivers, against the limit of the broker alone doing the same
//! hops, and what a per-hook queue of each type costs. It exists so that the figures in
//! `docs/BENCHMARKS.md` come from one reproducible run on real RabbitMQ and Redis rather
//! than from estimates: `cargo run --release -p hookbus-bench`.
//!
//! - [`bare`]: publisher → quorum queue → relay → classic v2 queue → signing deliverer.
//! - [`pipeline`]: the real producer, router and deliverer with one hook.
//! - [`queues`]: classic v2 against quorum for per-hook queues; [`cluster`]: the same on a
//!   private three-node cluster, a command of its own (`bench cluster-queues`).
//! - [`scenarios`]: fan-out, deliverer scaling, isolation, retry storm; [`scale`]: 10,000
//!   hooks, with the router and a deliverer in processes of their own ([`process`]).
//! - [`load`], [`receiver`], [`figures`]: the shared workload, the receiver that times it,
//!   and what the runs yield.
//! - [`cpu`]: how much of the machine other programs took meanwhile.
//! - [`report`], [`machine`]: the printed tables and the Markdown file, and what they were
//!   measured on.
//! - [`chaos`]: `bench chaos`, the soak under faults (`docs/RELIABILITY.md`).
//! - [`console`]: `bench console`, the console's API answers at 10,000 hooks.
//! - [`traced`]: `bench tracing`, throughput with tracing off, at 1 % and at 100 % sampling.
//! - [`backlog`]: `bench backlog`, a deliverer's memory against a backlog in many hooks.
//! - [`changes`]: `bench changes`, what one hook change costs among 100,000.
//! - [`share`]: `bench share`, deliverers sharing the hooks, and taking over from one killed.

mod active;
mod alloc;
mod amqp;
mod backlog;
mod bare;
mod changes;
mod chaos;
mod cluster;
mod console;
mod cpu;
mod figures;
mod load;
mod machine;
mod pipeline;
mod plot;
mod process;
mod progress;
mod queues;
mod rabbitmqctl;
mod receiver;
mod report;
mod scale;
mod scenarios;
mod share;
mod traced;

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

use crate::load::{Clock, Plan};

#[global_allocator]
static ALLOCATOR: alloc::Counting = alloc::Counting;

/// The plot's file name, next to the report.
const PLOT: &str = "benchmarks.png";

/// Above this share of the CPU taken by other programs, a run is reported as disturbed.
const DISTURBED: f64 = 0.05;

#[derive(Parser, Debug)]
#[command(
    name = "bench",
    about = "hookbus against the bare broker, and classic v2 against quorum queues; its commands measure one thing each",
    args_conflicts_with_subcommands = true
)]
struct Args {
    /// Without a command: the whole benchmark.
    #[command(subcommand)]
    command: Option<Command>,
    /// Messages of each saturated run (bare path, hookbus with the Rust SDK, one queue).
    #[arg(long, default_value_t = 20_000)]
    events: usize,
    /// Events of the saturated run through the HTTP ingest API.
    #[arg(long, default_value_t = 10_000)]
    ingest_events: usize,
    /// Fixed rates of the paced latency runs, messages per second (the reference
    /// figures for the bare path are at 100 and 1,000).
    #[arg(long, value_delimiter = ',', default_value = "100,1000")]
    rates: Vec<u32>,
    /// More paced rates, as shares of hookbus's one-hook saturation, which a calibration run
    /// measures first: latency at 10, 50 and 90 % of saturation.
    #[arg(long, value_delimiter = ',', default_value = "0.1,0.5,0.9")]
    saturation_shares: Vec<f64>,
    /// Skip the calibration run: only the fixed `--rates` are paced.
    #[arg(long)]
    skip_calibration: bool,
    /// Seconds of each paced run (each made `--repeats` times; the median p99 is kept).
    #[arg(long, default_value_t = 5)]
    paced_secs: u64,
    /// Times each saturated measurement is made (figures quote the median).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=9))]
    repeats: u64,
    /// Idle queues declared per queue type for the memory comparison.
    #[arg(long, default_value_t = 1_000)]
    idle_queues: usize,
    /// Skip the queue type comparison.
    #[arg(long)]
    skip_queues: bool,
    /// Skip the fan-out scenario (one event to 10 hooks).
    #[arg(long)]
    skip_fanout: bool,
    /// Skip the scale-of-configuration scenario.
    #[arg(long)]
    skip_scale: bool,
    /// Hooks configured in the scale scenario, one matching the events.
    #[arg(long, value_delimiter = ',', default_value = "10,10000,100000")]
    scale_hooks: Vec<usize>,
    /// Skip the deliverer scaling scenario (1, 2 and 4 deliverers, 50 ms receiver).
    #[arg(long)]
    skip_scaling: bool,
    /// Events per deliverer in the deliverer scaling scenario.
    #[arg(long, default_value_t = 1_000)]
    scaling_events: usize,
    /// Skip the isolation scenario (a hanging hook next to good ones).
    #[arg(long)]
    skip_isolation: bool,
    /// Skip the retry storm scenario.
    #[arg(long)]
    skip_storm: bool,
    /// Where the report is written.
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/BENCHMARKS.md"))]
    out: PathBuf,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Classic v2 against quorum per-hook queues on a private three-node RabbitMQ cluster:
    /// prints the figures and writes their section of the report.
    ClusterQueues(ClusterArgs),
    /// A soak under kill -9 of services and broker nodes, reconciled id by id (figures in
    /// docs/RELIABILITY.md).
    Chaos(chaos::Args),
    /// The console's API answers with many hooks configured: prints the figures and writes
    /// their section of the report.
    Console(ConsoleArgs),
    /// Throughput with tracing off, sampling 1 % and sampling every trace: prints the table
    /// of docs/BENCHMARKS.md's "Tracing".
    Tracing(traced::Args),
    /// One deliverer started against a backlog in many hooks: its peak memory and drain
    /// rate (docs/BENCHMARKS.md, "A backlog in many hooks").
    Backlog(backlog::Args),
    /// What one hook change costs at 10, 10,000 and 100,000 hooks stored
    /// (docs/BENCHMARKS.md, "A hook change at 100,000 hooks").
    Changes(changes::Args),
    /// Deliverers sharing 1,000 hooks: each one's share, and the takeover after a kill
    /// (docs/BENCHMARKS.md, "Deliverers sharing the hooks").
    Share(share::Args),
    /// 100,000 hooks, 1,000 of them active, with 1, 2 and 4 deliverers, beside the bare path
    /// and one hook: throughput, CPU per delivery, memory (docs/BENCHMARKS.md, "Cost follows
    /// activity").
    Active(active::Args),
    /// Deliverer scaling alone (1, 2 and 4 deliverers, one hook, 50 ms receiver), at a
    /// per-hook limit of deliveries at once that defaults to the deliverers' own.
    Scaling(ScalingArgs),
}

#[derive(clap::Args, Debug)]
struct ConsoleArgs {
    /// Hooks configured.
    #[arg(long, default_value_t = 10_000)]
    hooks: usize,
    /// Times each request is made.
    #[arg(long, default_value_t = 50)]
    repeats: usize,
    /// The report whose console section is written (the rest of it is kept).
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/BENCHMARKS.md"))]
    out: PathBuf,
}

#[derive(clap::Args, Debug)]
struct ScalingArgs {
    /// Deliveries of the hook each deliverer holds at once (default: the deliverers'
    /// `HOOKBUS_HOOK_IN_FLIGHT` default).
    #[arg(long)]
    in_flight: Option<u16>,
    /// Events per deliverer.
    #[arg(long, default_value_t = 1_000)]
    events: usize,
}

#[derive(clap::Args, Debug)]
struct ClusterArgs {
    /// Idle queues declared per queue type, one measurement per number.
    #[arg(long, value_delimiter = ',', default_value = "1000,10000")]
    counts: Vec<usize>,
    /// Messages of each run through one queue.
    #[arg(long, default_value_t = 20_000)]
    events: usize,
    /// Runs through one queue per type (figures quote the median).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=9))]
    repeats: u64,
    /// Seconds a declaration of idle queues may take; past them it stops, and the queues
    /// it declared are measured.
    #[arg(long, default_value_t = 900)]
    declare_timeout: u64,
    /// The report whose cluster section is written (the rest of it is kept).
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/BENCHMARKS.md"))]
    out: PathBuf,
}

impl Args {
    fn plan(&self) -> Plan {
        Plan {
            events: self.events,
            warmup: 500,
            ingest_events: self.ingest_events,
            rates: self.rates.clone(),
            saturation: None,
            paced_secs: self.paced_secs,
            idle_queues: self.idle_queues,
            repeats: self.repeats as usize,
        }
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    let mut argv: Vec<String> = std::env::args().collect();
    if argv.get(1).map(String::as_str) == Some(process::SERVICE) {
        // `bench service <role> [flags]`: one service for `process::ServiceProcess`.
        let role = argv.get(2).cloned().unwrap_or_default();
        argv.drain(1..3.min(argv.len()));
        return hookbus_tests::service::run(&role, argv)
            .await
            .map_err(|e| anyhow::anyhow!("{role}: {e}"));
    }
    let args = Args::parse();
    match args.command {
        Some(Command::ClusterQueues(cluster)) => return cluster_queues(&cluster).await,
        Some(Command::Chaos(chaos)) => return chaos::main(chaos).await,
        Some(Command::Console(console)) => {
            return console::run(console.hooks, console.repeats.max(1), &console.out).await
        }
        Some(Command::Tracing(tracing)) => return traced::run(&tracing).await,
        Some(Command::Backlog(backlog)) => return backlog::run(&backlog).await,
        Some(Command::Changes(changes)) => return changes::run(&changes).await,
        Some(Command::Share(share)) => return share::run(&share).await,
        Some(Command::Active(active)) => return active::run(&active).await,
        Some(Command::Scaling(scaling)) => return scaling_alone(&scaling).await,
        None => {}
    }
    let mut plan = args.plan();
    let started = Instant::now();
    let cpu_at_start = cpu::CpuSample::take(&cpu::Servers::Shared);
    let clock = Clock::start();

    if !args.skip_calibration {
        println!("calibration: hookbus's one-hook saturation, for the paced rates");
        let saturation = pipeline::saturation(clock, &plan)
            .await
            .context("calibration")?;
        plan.add_shares(saturation, &args.saturation_shares);
    }

    println!("bare broker: publisher → A → relay → B → deliverer → receiver");
    let bare = bare::run(clock, &plan).await.context("bare broker path")?;
    println!("hookbus: producer → router → deliverer → receiver, one hook");
    let hookbus = pipeline::run(clock, &plan).await.context("hookbus path")?;
    let queues = if args.skip_queues {
        None
    } else {
        println!("per-hook queue type: classic v2 and quorum");
        Some(queues::run(&plan).await.context("queue type comparison")?)
    };

    let scenarios = scenarios_run(clock, &args, &plan).await?;

    let others_cpu = others_cpu(cpu_at_start, &cpu::Servers::Shared);
    let plot = args.out.with_file_name(PLOT);
    let previous = std::fs::read_to_string(&args.out).unwrap_or_default();
    let report = report::Report {
        plot: PLOT,
        machine: machine::Machine::detect(rabbitmqctl::Node::SHARED).await,
        plan: &plan,
        bare: &bare,
        hookbus: &hookbus,
        queues: queues.as_deref(),
        scenarios: &scenarios,
        cluster: report::cluster::SECTION.extract(&previous),
        console: report::console::SECTION.extract(&previous),
        tracing: report::TRACING.extract(&previous),
        at_scale: report::AT_SCALE.extract(&previous),
        run_time: started.elapsed(),
        others_cpu,
    };
    println!("\n{}", report.tables()?);
    std::fs::write(&args.out, report.markdown()?)
        .with_context(|| format!("writing {}", args.out.display()))?;
    plot::draw(&plot, &report.bars())?;
    println!("written to {} and {}", args.out.display(), plot.display());
    Ok(())
}

/// `bench cluster-queues`: the cluster comparison, printed and written into its section of
/// the report.
/// `bench scaling`: prints each count of deliverers' throughput and its ratio to one.
async fn scaling_alone(args: &ScalingArgs) -> Result<()> {
    let in_flight = args.in_flight.unwrap_or_else(|| {
        hookbus_tests::pipeline::deliverer_config("defaults", &[]).hook_in_flight
    });
    println!("deliverer scaling: 1, 2 and 4 deliverers, receiver taking 50 ms, {in_flight} in flight each");
    let clock = Clock::start();
    let receiver = receiver::Receiver::start(clock).await?;
    let points = scenarios::scaling(clock, &receiver, &[1, 2, 4], args.events, in_flight).await?;
    let one = points.first().map_or(f64::NAN, |p| p.run.per_sec());
    println!("\n| deliverers | deliveries | deliveries/s | vs one deliverer |");
    println!("|---|---|---|---|");
    for p in &points {
        println!(
            "| {} | {} | {:.0} | {:.2}× |",
            p.deliverers,
            p.run.messages,
            p.run.per_sec(),
            p.run.per_sec() / one
        );
    }
    Ok(())
}

async fn cluster_queues(args: &ClusterArgs) -> Result<()> {
    let options = cluster::Options {
        counts: args.counts.clone(),
        events: args.events,
        repeats: args.repeats as usize,
        deadline: std::time::Duration::from_secs(args.declare_timeout),
    };
    let run = cluster::run(&options).await.context("cluster comparison")?;
    let report = report::cluster::ClusterReport { run: &run };
    println!("\n{}", report.tables()?);
    let document = std::fs::read_to_string(&args.out)
        .with_context(|| format!("reading {}", args.out.display()))?;
    let document = report::cluster::SECTION.place(&document, &report.section()?);
    std::fs::write(&args.out, document)
        .with_context(|| format!("writing {}", args.out.display()))?;
    println!("written to {}", args.out.display());
    Ok(())
}

/// The scenarios of issue 8 beyond one hook, each unless skipped.
async fn scenarios_run(clock: Clock, args: &Args, plan: &Plan) -> Result<scenarios::Figures> {
    let receiver = receiver::Receiver::start(clock).await?;
    let mut figures = scenarios::Figures::default();
    if !args.skip_fanout {
        println!("fan-out: one event to {} hooks", scenarios::FANOUT);
        let events = (plan.events / scenarios::FANOUT).max(1);
        figures.fanout = Some(
            scenarios::fanout(clock, &receiver, events, plan.repeats)
                .await
                .context("fan-out")?,
        );
    }
    if !args.skip_scale {
        println!("scale of configuration: {:?} hooks", args.scale_hooks);
        figures.scale = Some(
            scale::scale(clock, &args.scale_hooks, plan.events / 2, plan.repeats)
                .await
                .context("scale of configuration")?,
        );
    }
    if !args.skip_scaling {
        println!("deliverer scaling: 1, 2 and 4 deliverers, receiver taking 50 ms");
        figures.scaling = Some(
            scenarios::scaling(
                clock,
                &receiver,
                &[1, 2, 4],
                args.scaling_events,
                scenarios::SCALING_IN_FLIGHT,
            )
            .await
            .context("deliverer scaling")?,
        );
    }
    if !args.skip_isolation {
        println!(
            "isolation: {} good hooks, then next to a hanging one",
            scenarios::GOOD_HOOKS
        );
        figures.isolation = Some(
            scenarios::isolation(clock, &receiver, plan.events / 8)
                .await
                .context("isolation")?,
        );
    }
    if !args.skip_storm {
        println!("retry storm: one delivery in five fails once");
        figures.storm = Some(
            scenarios::storm(clock, &receiver, plan.events / 4)
                .await
                .context("retry storm")?,
        );
    }
    Ok(figures)
}

/// The share of the CPU other programs took since `start`, printed with a warning when it
/// disturbed the figures.
fn others_cpu(start: Option<cpu::CpuSample>, servers: &cpu::Servers) -> Option<f64> {
    let share = start.zip(cpu::CpuSample::take(servers))?;
    let share = share.1.others_since(share.0);
    let verdict = if share > DISTURBED {
        ": the figures are disturbed, run again on an idle machine"
    } else {
        ""
    };
    println!(
        "other programs used {:.1} % of the CPU during the run{verdict}",
        share * 100.0
    );
    Some(share)
}
