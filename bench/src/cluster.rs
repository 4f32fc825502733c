//! The per-hook queue type on a three-node cluster (issue 14): what replicated per-hook
//! queues cost, so that the default of `HOOKBUS_HOOK_QUEUE_TYPE` rests on figures. [`queues`]
//! compares the two types on the shared single broker; here a private cluster of three nodes
//! on loopback (`hookbus_tests::cluster`, torn down when dropped) takes idle hook queues,
//! declared by hookbus's own `Declare::declare_hook`, and one busy queue of each type. Run
//! on its own: `cargo run --release -p hookbus-bench -- cluster-queues`.
//!
//! Everything goes through one connection to the first node, as one router declares every
//! hook's queue on its own connection: a classic queue then lives on that node, a quorum
//! queue has a member on every node wherever it is declared (its leader on the first).
//!
//! [`queues`]: crate::queues

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use futures::future::join_all;
use hookbus_contracts::topology::Topology;
use hookbus_contracts::HookId;
use hookbus_runtime::declare::Declare;
use hookbus_tests::cluster::{ClusterNode, RabbitCluster};
use lapin::options::ExchangeDeleteOptions;

use crate::amqp::{self, QueueType};
use crate::cpu::{self, CpuSample};
use crate::figures::{repeat, Runs};
use crate::machine::Machine;
use crate::progress;
use crate::queues;
use crate::rabbitmqctl::Node;

/// Time given to the nodes after declaring, before their memory is read.
const SETTLE: Duration = Duration::from_secs(5);
/// How long the nodes' CPU time is read while the queues are idle.
const IDLE_SPAN: Duration = Duration::from_secs(20);
/// How long the run tries to connect to the first node.
const CONNECT: Duration = Duration::from_secs(120);
/// How long a node may take to stop before it is killed.
const STOP: Duration = Duration::from_secs(120);

/// What to measure.
pub struct Options {
    /// Idle queues declared per queue type, one measurement each.
    pub counts: Vec<usize>,
    /// Messages of each run through one queue, and how many runs per type.
    pub events: usize,
    pub repeats: usize,
    /// The longest a declaration of idle queues may take: past it, what was declared is
    /// measured and the row says the declaration did not finish.
    pub deadline: Duration,
}

/// A run's figures, with what they were measured on.
pub struct ClusterRun {
    pub machine: Machine,
    pub figures: ClusterFigures,
    pub run_time: Duration,
    /// The share of the CPU other programs (the shared broker included) used meanwhile.
    pub others_cpu: Option<f64>,
}

pub struct ClusterFigures {
    /// Nodes in the cluster.
    pub nodes: usize,
    pub events: usize,
    pub deadline: Duration,
    /// The CPU the nodes used with no queue of the benchmark, in cores (`IDLE_SPAN`).
    pub empty_cores: Option<f64>,
    pub throughput: Vec<OneQueue>,
    pub idle: Vec<IdleOnCluster>,
}

/// Confirmed publishes and acked consumes through one queue of `kind`.
pub struct OneQueue {
    pub kind: QueueType,
    pub runs: Runs,
}

/// What `queues` idle queues of one type cost the cluster.
pub struct IdleOnCluster {
    pub kind: QueueType,
    pub queues: usize,
    /// The queues declared (and measured): fewer than `queues` when the declaration stopped.
    pub declared: usize,
    /// Why the declaration stopped before `queues`, if it did.
    pub stopped: Option<Stopped>,
    pub declare: Duration,
    pub delete: Duration,
    /// Each node's Erlang VM total after declaring minus before, in bytes, in node order.
    pub vm_delta: Vec<Option<i64>>,
    /// The queues' own memory (`rabbitmqctl list_queues memory` through the first node),
    /// summed, in bytes; `None` when it did not answer in time.
    pub queues_memory: Option<u64>,
    /// The CPU the nodes used together while the queues were idle, in cores (`IDLE_SPAN`).
    pub idle_cores: Option<f64>,
}

/// Why a declaration of idle queues stopped before the last.
#[derive(Debug, Clone)]
pub enum Stopped {
    /// It had taken `Options::deadline`.
    Deadline,
    /// The broker refused a declaration, or the connection failed.
    Failed(String),
}

impl std::fmt::Display for Stopped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Stopped::Deadline => f.write_str("past the deadline"),
            Stopped::Failed(err) => f.write_str(err),
        }
    }
}

/// Starts the cluster, measures, and tears it down.
pub async fn run(options: &Options) -> Result<ClusterRun> {
    println!("starting a RabbitMQ cluster of three nodes on loopback");
    let started = Instant::now();
    let cluster = RabbitCluster::start().await;
    println!(
        "  started in {:.0} s: {}",
        started.elapsed().as_secs_f64(),
        cluster
            .nodes
            .iter()
            .map(ClusterNode::name)
            .collect::<Vec<_>>()
            .join(", ")
    );
    // Before any queue: `status` is slow while thousands of quorum queues exist.
    let machine = Machine::detect(Node::named(cluster.nodes[0].name())).await;
    let servers = cpu::Servers::Pids(node_pids(&cluster).await);
    let cpu_at_start = CpuSample::take(&servers);
    let started = Instant::now();
    let url = cluster.nodes[0].amqp_url();
    let figures = match connect(&url, "hookbus-bench-cluster").await {
        Ok(conn) => {
            let figures = measure(&cluster, &conn, options, &servers).await;
            let _ = conn.close(200, "cluster comparison done".into()).await;
            figures
        }
        Err(err) => Err(err),
    };
    let run_time = started.elapsed();
    let others_cpu = crate::others_cpu(cpu_at_start, &servers);
    stop(cluster).await;
    Ok(ClusterRun {
        machine,
        figures: figures?,
        run_time,
        others_cpu,
    })
}

/// Stops every node, killing the ones that do not stop within `STOP`, and removes their
/// data (dropping the cluster): a node left behind would hold gigabytes of the machine.
async fn stop(cluster: RabbitCluster) {
    println!("stopping the cluster");
    for node in &cluster.nodes {
        let stopped = tokio::time::timeout(STOP, node.ctl(&["stop"])).await;
        if !matches!(stopped, Ok(true)) {
            println!(
                "  {} did not stop within {} s: killed",
                node.name(),
                STOP.as_secs()
            );
            node.kill().await;
        }
    }
    drop(cluster);
}

/// The operating system's process of each node (`os:getpid()`), for the CPU accounting.
async fn node_pids(cluster: &RabbitCluster) -> Vec<u32> {
    let pids = cluster
        .nodes
        .iter()
        .map(|node| Node::named(node.name()).eval("list_to_integer(os:getpid())."));
    join_all(pids)
        .await
        .into_iter()
        .flatten()
        .filter_map(|pid| u32::try_from(pid).ok())
        .collect()
}

/// Every step on one connection to the first node, opened before any queue: with RabbitMQ
/// 3.10.8 on this machine, the first node accepted no new connection once one that had
/// declared 1,000 quorum queues was closed (seen twice; see `docs/BENCHMARKS.md`).
async fn measure(
    cluster: &RabbitCluster,
    conn: &lapin::Connection,
    options: &Options,
    servers: &cpu::Servers,
) -> Result<ClusterFigures> {
    let url = cluster.nodes[0].amqp_url();
    println!(
        "  the nodes' CPU with no queues, for {} s",
        IDLE_SPAN.as_secs()
    );
    let mut figures = ClusterFigures {
        nodes: cluster.nodes.len(),
        events: options.events,
        deadline: options.deadline,
        empty_cores: idle_cores(servers).await,
        throughput: Vec::new(),
        idle: Vec::new(),
    };
    for kind in [QueueType::ClassicV2, QueueType::Quorum] {
        println!("  ({}) one queue on the first node", kind.label());
        let runs = repeat("one queue", options.repeats, || {
            queues::one_queue(conn, &url, kind, options.events)
        })
        .await
        .with_context(|| format!("one {} queue on the cluster", kind.label()))?;
        figures.throughput.push(OneQueue { kind, runs });
        for &count in &options.counts {
            let idle = idle_queues(cluster, conn, kind, count, options.deadline, servers)
                .await
                .with_context(|| format!("{count} idle {} queues", kind.label()))?;
            report(&idle);
            figures.idle.push(idle);
        }
    }
    Ok(figures)
}

/// Prints one measurement of idle queues as it ends.
fn report(idle: &IdleOnCluster) {
    let growth: Vec<String> = (idle.vm_delta.iter())
        .map(|delta| queues::per_queue(*delta, idle.declared))
        .collect();
    println!(
        "  {} of {} idle queues declared in {:.1} s{}, deleted in {:.1} s; VM growth by node: {}; {} by list_queues; idle, the nodes used {} cores",
        idle.declared,
        idle.queues,
        idle.declare.as_secs_f64(),
        idle.stopped
            .as_ref()
            .map(|why| format!(" (stopped: {why})"))
            .unwrap_or_default(),
        idle.delete.as_secs_f64(),
        growth.join(", "),
        queues::per_queue(idle.queues_memory.map(|b| b as i64), idle.declared),
        idle.idle_cores
            .map_or_else(|| "n/a".into(), |cores| format!("{cores:.2}")),
    );
}

/// Declares `count` hook queues of `kind` as hookbus does (bound to a deliveries exchange of
/// their own), reads every node's memory and the CPU the idle queues take, and deletes them,
/// also after a declaration that stopped early.
async fn idle_queues(
    cluster: &RabbitCluster,
    conn: &lapin::Connection,
    kind: QueueType,
    count: usize,
    deadline: Duration,
    servers: &cpu::Servers,
) -> Result<IdleOnCluster> {
    let topology =
        Topology::new(&amqp::unique_prefix("cluster")).with_delivery_queues(kind.setting());
    let hooks: Vec<HookId> = (0..count).map(|_| HookId::generate()).collect();
    let queue_names: Vec<String> = hooks.iter().map(|h| topology.hook_queue(h)).collect();
    let nodes: Vec<Node> = cluster
        .nodes
        .iter()
        .map(|n| Node::named(n.name()))
        .collect();
    topology
        .declare_deliveries(&conn.create_channel().await?)
        .await?;

    let before = vm_memory(&nodes).await;
    let declared = AtomicUsize::new(0);
    let bar = progress::bar(count as u64, &format!("{} queues declared", kind.label()));
    let started = Instant::now();
    let ids: Vec<String> = hooks.iter().map(ToString::to_string).collect();
    let declaring = amqp::on_channels(conn, &ids, |ch, id| {
        let (topology, declared, bar) = (&topology, &declared, &bar);
        async move {
            let hook = HookId::parse(&id).context("a generated hook id")?;
            topology.declare_hook(&ch, &hook).await?;
            declared.fetch_add(1, Ordering::Relaxed);
            bar.inc(1);
            Ok(())
        }
    });
    let stopped = match tokio::time::timeout(deadline, declaring).await {
        Ok(Ok(())) => None,
        Ok(Err(err)) => Some(Stopped::Failed(format!("{err:#}"))),
        Err(_) => Some(Stopped::Deadline),
    };
    let declare = started.elapsed();
    bar.finish_and_clear();
    let declared = declared.into_inner();

    tokio::time::sleep(SETTLE).await;
    let after = vm_memory(&nodes).await;
    let idle_cores = idle_cores(servers).await;
    let queues_memory = nodes[0]
        .queues_memory(&format!("{}.hook.", topology.prefix()))
        .await;

    println!("    deleting {} queues", queue_names.len());
    let started = Instant::now();
    let deleted = amqp::delete_queues(conn, &queue_names).await;
    let delete = started.elapsed();
    conn.create_channel()
        .await?
        .exchange_delete(
            topology.deliveries_exchange().as_str().into(),
            ExchangeDeleteOptions::default(),
        )
        .await?;
    deleted?;
    Ok(IdleOnCluster {
        kind,
        queues: count,
        declared,
        stopped,
        declare,
        delete,
        vm_delta: (before.iter().zip(&after))
            .map(|(b, a)| b.zip(*a).map(|(b, a)| a as i64 - b as i64))
            .collect(),
        queues_memory,
        idle_cores,
    })
}

/// The CPU `servers` use over `IDLE_SPAN`, in cores.
async fn idle_cores(servers: &cpu::Servers) -> Option<f64> {
    let start = CpuSample::take(servers)?;
    tokio::time::sleep(IDLE_SPAN).await;
    Some(CpuSample::take(servers)?.servers_since(start))
}

/// A connection to the node at `url`, tried again for up to `CONNECT`: a node of three
/// sharing two cores can be slow to answer for a while after the cluster started.
async fn connect(url: &str, name: &str) -> Result<lapin::Connection> {
    let started = Instant::now();
    loop {
        match amqp::connect_to(url, name).await {
            Ok(conn) => return Ok(conn),
            Err(err) if started.elapsed() > CONNECT => return Err(err),
            Err(err) => println!("    {name}: {err:#}, trying again"),
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Every node's `erlang:memory(total)`, in node order.
async fn vm_memory(nodes: &[Node<'_>]) -> Vec<Option<u64>> {
    join_all(nodes.iter().map(|node| node.vm_memory())).await
}
