//! `bench active`: cost that follows active hooks, not configured ones. 100,000 hooks are
//! stored, 1,000 of them subscribed to the published event; a router and 1, 2, then 4
//! deliverer processes (default limits) deliver each event to the 1,000. Beside them, in
//! the same run, the bare broker path and hookbus with one hook, saturated. For each: the
//! deliveries per second and the CPU time per delivered event of every process involved
//! (this process, which publishes and receives; the router and deliverer processes;
//! RabbitMQ and Redis), and for the 1,000 the broker's and each deliverer's memory. The
//! figures go into docs/BENCHMARKS.md by hand ("Cost follows activity").

use std::time::{Duration, Instant};

use anyhow::{anyhow, Result};
use hookbus_contracts::metric_names as name;
use hookbus_contracts::EventName;
use hookbus_producer::Publisher;
use hookbus_tests::pipeline::{metric, AMQP_URL};

use crate::load::{self, Clock, Plan};
use crate::process::ServiceProcess;
use crate::rabbitmqctl::Node;
use crate::receiver::Receiver;
use crate::scale::{self, Configured};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Hooks stored.
    #[arg(long, default_value_t = 100_000)]
    hooks: usize,
    /// Of them, subscribed to the published event.
    #[arg(long, default_value_t = 1_000)]
    active: usize,
    /// Events of each run with the active hooks (each reaches every one of them).
    #[arg(long, default_value_t = 40)]
    events: usize,
    /// Messages of the bare and one-hook runs.
    #[arg(long, default_value_t = 20_000)]
    messages: usize,
    /// Deliverer processes of each run with the active hooks.
    #[arg(long, value_delimiter = ',', default_value = "1,2,4")]
    deliverers: Vec<usize>,
}

const EVENT: &str = crate::scenarios::EVENT;
const MIB: f64 = 1048576.0;

/// One measured run: deliveries per second, and CPU time per delivery of each process.
struct Run {
    rate: f64,
    /// Microseconds per delivery.
    cpu_us: Cpu,
}

impl Run {
    fn rate(&self) -> f64 {
        self.rate
    }

    fn cpu_us(&self) -> f64 {
        self.cpu_us.total()
    }
}

/// CPU time of each process a delivery goes through (seconds so far, or a difference).
#[derive(Clone, Copy)]
struct Cpu {
    /// This process: the publisher and the receiver (and, on the bare path, the relay and
    /// the deliverer too).
    bench: f64,
    router: f64,
    deliverers: f64,
    rabbitmq: f64,
    redis: f64,
}

impl Cpu {
    /// From `/proc/<pid>/stat`, which keeps the time of threads that ended; `None` where a
    /// process cannot be read.
    fn now(router: Option<&ServiceProcess>, deliverers: &[ServiceProcess]) -> Option<Cpu> {
        let of = |service: &ServiceProcess| crate::cpu::process_seconds(service.pid());
        let mut in_deliverers = 0.0;
        for d in deliverers {
            in_deliverers += of(d)?;
        }
        Some(Cpu {
            bench: crate::cpu::process_seconds(std::process::id())?,
            router: router.map_or(Some(0.0), of)?,
            deliverers: in_deliverers,
            rabbitmq: crate::cpu::command_seconds("beam.smp"),
            redis: crate::cpu::command_seconds("redis-server"),
        })
    }

    fn zip(self, other: Cpu, f: impl Fn(f64, f64) -> f64) -> Cpu {
        Cpu {
            bench: f(self.bench, other.bench),
            router: f(self.router, other.router),
            deliverers: f(self.deliverers, other.deliverers),
            rabbitmq: f(self.rabbitmq, other.rabbitmq),
            redis: f(self.redis, other.redis),
        }
    }

    fn since(self, start: Cpu) -> Cpu {
        self.zip(start, |end, start| end - start)
    }

    /// Microseconds per delivery, for `deliveries`.
    fn per_delivery_us(self, deliveries: usize) -> Cpu {
        self.zip(self, |seconds, _| 1e6 * seconds / deliveries as f64)
    }

    fn total(self) -> f64 {
        self.bench + self.router + self.deliverers + self.rabbitmq + self.redis
    }
}

/// The CPU time between two readings; NaN everywhere if either failed.
fn cpu_between(start: Option<Cpu>, end: Option<Cpu>) -> Cpu {
    match (start, end) {
        (Some(start), Some(end)) => end.since(start),
        _ => Cpu {
            bench: f64::NAN,
            router: f64::NAN,
            deliverers: f64::NAN,
            rabbitmq: f64::NAN,
            redis: f64::NAN,
        },
    }
}

pub async fn run(args: &Args) -> Result<()> {
    let clock = Clock::start();
    let receiver = Receiver::start(clock).await?;
    let bare = bare(args.messages).await?;
    println!(
        "bare: {:.0} deliveries/s, {:.0} µs CPU per delivery",
        bare.rate(),
        bare.cpu_us()
    );
    let one = hookbus(clock, &receiver, 0, 1, &[1], args.messages).await?;
    let one = one.into_iter().next().ok_or_else(|| anyhow!("no run"))?;
    println!(
        "hookbus, one hook: {:.0} deliveries/s, {:.0} µs CPU per delivery",
        one.run.rate(),
        one.run.cpu_us()
    );
    let many = hookbus(
        clock,
        &receiver,
        args.hooks - args.active,
        args.active,
        &args.deliverers,
        args.events,
    )
    .await?;
    println!("\n| case | deliverers | deliveries/s | vs bare | CPU per delivery, all processes | vs bare | deliverer resident memory, each | broker memory (VM) | hook queues | hook queues' memory |");
    println!("|---|---|---|---|---|---|---|---|---|---|");
    println!(
        "| bare broker path | | {:.0} | 1.00× | {:.0} µs | 1.00× | | | | |",
        bare.rate(),
        bare.cpu_us()
    );
    let row = |case: &str, m: &Measured| {
        let rss: Vec<String> = m
            .deliverer_rss
            .iter()
            .map(|b| format!("{:.0}", *b as f64 / MIB))
            .collect();
        println!(
            "| {case} | {} | {:.0} | {:.2}× | {:.0} µs | {:.2}× | {} MiB | {:.0} MiB | {} | {:.1} MiB |",
            m.deliverers,
            m.run.rate(),
            m.run.rate() / bare.rate(),
            m.run.cpu_us(),
            m.run.cpu_us() / bare.cpu_us(),
            rss.join(", "),
            m.broker_vm as f64 / MIB,
            m.hook_queue_count,
            m.hook_queues as f64 / MIB,
        );
    };
    row("hookbus, 1 hook", &one);
    let many_case = format!("hookbus, {} of {} hooks active", args.active, args.hooks);
    for m in &many {
        row(&many_case, m);
    }
    println!("\nCPU per delivery by process (µs):\n");
    println!("| case | deliverers | this process (publisher, receiver) | router | deliverers | RabbitMQ | Redis | all |");
    println!("|---|---|---|---|---|---|---|---|");
    let split = |case: &str, deliverers: &str, run: &Run| {
        let c = run.cpu_us;
        println!(
            "| {case} | {deliverers} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} |",
            c.bench,
            c.router,
            c.deliverers,
            c.rabbitmq,
            c.redis,
            c.total()
        );
    };
    split(
        "bare broker path (relay and deliverer in this process)",
        "",
        &bare,
    );
    split("hookbus, 1 hook", "1", &one.run);
    for m in &many {
        split(&many_case, &m.deliverers.to_string(), &m.run);
    }
    Ok(())
}

/// The bare path saturated with `n` messages, after a tenth as many to warm up. Its CPU
/// time is read around the whole of `bare::run`, which also waits 5 s for the broker to
/// settle first: what the machine spends idle over that wait, measured just before, is
/// taken off.
async fn bare(n: usize) -> Result<Run> {
    let clock = Clock::start();
    let plan = Plan {
        events: n,
        warmup: n / 10,
        ingest_events: 0,
        rates: Vec::new(),
        saturation: None,
        paced_secs: 0,
        idle_queues: 0,
        repeats: 1,
    };
    let idle_for = Duration::from_secs(5);
    let idle_start = Cpu::now(None, &[]);
    tokio::time::sleep(idle_for).await;
    let idle = cpu_between(idle_start, Cpu::now(None, &[]));
    let before = Cpu::now(None, &[]);
    let figures = crate::bare::run(clock, &plan).await?;
    let cpu = cpu_between(before, Cpu::now(None, &[])).zip(idle, |run, idle| run - idle);
    Ok(Run {
        rate: figures.saturated.median(),
        cpu_us: cpu.per_delivery_us(n + plan.warmup),
    })
}

struct Measured {
    deliverers: usize,
    run: Run,
    deliverer_rss: Vec<u64>,
    broker_vm: u64,
    hook_queues: u64,
    hook_queue_count: usize,
}

/// `idle` hooks stored that never match, `active` subscribed to the event; for each count
/// of deliverers, `events` events saturated.
async fn hookbus(
    clock: Clock,
    receiver: &Receiver,
    idle: usize,
    active: usize,
    deliverers: &[usize],
    events: usize,
) -> Result<Vec<Measured>> {
    let mut configured = Configured::new("active")?;
    configured.store_idle_as(idle, |_, _| {}).await?;
    for _ in 0..active {
        let hook = scale::hook(EVENT, &receiver.url())?;
        configured.store.insert(&hook).await?;
    }
    let router = configured.start("router").await?;
    let hook_queues = format!("{}.hook.", configured.prefix());
    println!(
        "{} hooks stored ({active} to be active), router started, no event yet: broker VM {:.0} MiB, {} hook queues",
        idle + active,
        Node::SHARED.vm_memory().await.unwrap_or(0) as f64 / MIB,
        Node::SHARED.queue_count(&hook_queues).await.unwrap_or(0),
    );
    let publisher = Publisher::connect(AMQP_URL, configured.prefix()).await?;
    let event = EventName::parse(EVENT)?;
    let send = |fields| {
        let publisher = &publisher;
        async move {
            publisher.publish_event(event, fields).await?;
            Ok(())
        }
    };
    let mut measured = Vec::new();
    for &n in deliverers {
        let mut started = Vec::new();
        for _ in 0..n {
            started.push(configured.start("deliverer").await?);
        }
        let owned = (idle + active) * n.min(hookbus_contracts::owners::DEFAULT_OWNERS);
        wait_owned(&configured, &started, owned).await?;
        // A warm-up: the hooks become active, their queues declared, their consumers started.
        load::fanned_out(clock, receiver, events.div_ceil(10), active, send).await?;
        let before = Cpu::now(Some(&router), &started);
        let throughput = load::fanned_out(clock, receiver, events, active, send).await?;
        let after = Cpu::now(Some(&router), &started);
        let run = Run {
            rate: throughput.per_sec(),
            cpu_us: cpu_between(before, after).per_delivery_us(throughput.messages),
        };
        println!(
            "{active} active of {} hooks, {n} deliverers: {:.0} deliveries/s, {:.0} µs CPU per delivery",
            idle + active,
            run.rate(),
            run.cpu_us()
        );
        measured.push(Measured {
            deliverers: n,
            run,
            deliverer_rss: started
                .iter()
                .filter_map(ServiceProcess::rss_bytes)
                .collect(),
            broker_vm: Node::SHARED.vm_memory().await.unwrap_or(0),
            hook_queues: Node::SHARED.queues_memory(&hook_queues).await.unwrap_or(0),
            hook_queue_count: Node::SHARED.queue_count(&hook_queues).await.unwrap_or(0),
        });
        for d in started {
            d.stop().await;
        }
    }
    drop(publisher);
    router.stop().await;
    configured.cleanup(true).await;
    Ok(measured)
}

/// Waits until the deliverers own `owned` hooks in all (they have read the hooks and the
/// other deliverers).
async fn wait_owned(
    configured: &Configured,
    deliverers: &[ServiceProcess],
    owned: usize,
) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let mut sum = 0.0;
        for d in deliverers {
            sum += metric(&configured.http, d.addr, name::HOOKS_OWNED)
                .await
                .unwrap_or(0.0);
        }
        if sum == owned as f64 {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(anyhow!("the deliverers own {sum} hooks, not {owned}"));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
