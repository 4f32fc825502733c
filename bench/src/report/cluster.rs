//! The cluster comparison's section of `docs/BENCHMARKS.md` (`bench cluster-queues`), which
//! a run of its own writes into the existing file: the figures handed to its templates
//! (`cluster.md.j2`, `cluster-tables.md.j2`) with every ratio and verdict computed here, and
//! the marks that delimit the section, so that the command can replace it and a full run of
//! the benchmark, which starts no cluster, can keep it.

use serde::Serialize;

use super::context::RunsRow;
use super::render;
use crate::cluster::{ClusterRun, IdleOnCluster, Stopped};
use crate::machine::Machine;

/// The first and last lines of the section (HTML comments: Markdown shows neither).
const BEGIN: &str = "<!-- bench cluster-queues: from here to its end mark, written by `cargo run --release -p hookbus-bench -- cluster-queues` and kept by a full run -->";
const END: &str = "<!-- bench cluster-queues: end -->";
/// Idle queues that keep more than this share of the machine's CPU busy are said to be
/// heavy for it.
const HEAVY_IDLE: f64 = 0.25;
/// The heading the section goes before when the file has none yet: where the report's
/// template places it (`BENCHMARKS.md.j2`).
const NEXT_HEADING: &str = "\n## Beyond one hook\n";

pub struct ClusterReport<'a> {
    pub run: &'a ClusterRun,
}

impl ClusterReport<'_> {
    /// The figures as Markdown tables (also readable in a terminal).
    pub fn tables(&self) -> anyhow::Result<String> {
        render("cluster-tables.md.j2", &Context::new(self.run))
    }

    /// The section, from its begin mark to its end mark and line break.
    pub fn section(&self) -> anyhow::Result<String> {
        render("cluster.md.j2", &Context::new(self.run))
    }
}

/// The section of `document`, marks included, if it has one.
pub fn extract(document: &str) -> Option<&str> {
    super::marked(document, BEGIN, END)
}

/// `document` with `section` in place of its own, or before the heading that follows the
/// section in the report (at the end without that heading).
pub fn place(document: &str, section: &str) -> String {
    if let Some(old) = extract(document) {
        let start = old.as_ptr() as usize - document.as_ptr() as usize;
        return [&document[..start], section, &document[start + old.len()..]].concat();
    }
    match document.find(NEXT_HEADING) {
        Some(at) => [&document[..=at], section, &document[at..]].concat(),
        None => [document, "\n", section].concat(),
    }
}

/// What the cluster templates see.
#[derive(Serialize)]
struct Context<'a> {
    marks: Marks,
    machine: &'a Machine,
    nodes: usize,
    run_secs: f64,
    others_cpu_percent: Option<f64>,
    /// Other programs took enough CPU to disturb the figures (`crate::DISTURBED`).
    disturbed: bool,
    events: usize,
    deadline_secs: u64,
    /// The nodes' CPU with none of the benchmark's queues, in cores.
    empty_cores: Option<f64>,
    throughput: Vec<ThroughputRow>,
    /// Quorum's median against classic v2's.
    throughput_ratio: Option<f64>,
    idle: Vec<IdleRow>,
    /// Quorum against classic v2 at each number of queues both measured.
    comparisons: Vec<Comparison>,
    /// The comparison at the most queues, if any.
    largest: Option<Comparison>,
}

#[derive(Serialize)]
struct Marks {
    begin: &'static str,
    end: &'static str,
}

#[derive(Serialize)]
struct ThroughputRow {
    kind: &'static str,
    runs: RunsRow,
}

#[derive(Serialize, Clone)]
struct IdleRow {
    kind: &'static str,
    queues: usize,
    declared: usize,
    /// The declaration stopped before `queues`: at the deadline, or failed with `error`.
    stopped: bool,
    timed_out: bool,
    error: Option<String>,
    declare_secs: f64,
    declared_per_sec: f64,
    delete_secs: f64,
    /// Each node's VM growth per declared queue, KiB, in node order.
    per_node_kib: Vec<Option<f64>>,
    /// Each node's VM growth in all, MiB.
    per_node_mib: Vec<Option<f64>>,
    /// The growth of the three VMs together per queue, KiB (`None` if a node did not answer).
    cluster_kib: Option<f64>,
    cluster_mib: Option<f64>,
    /// The largest growth of one node, MiB.
    max_node_mib: Option<f64>,
    /// `list_queues memory` per queue, KiB.
    list_kib: Option<f64>,
    /// The nodes' CPU while the queues were idle, in cores.
    idle_cores: Option<f64>,
}

impl IdleRow {
    fn new(idle: &IdleOnCluster) -> Self {
        let declared = idle.declared.max(1) as f64;
        let mib = |bytes: i64| bytes as f64 / 1048576.0;
        let cluster: Option<i64> = idle.vm_delta.iter().copied().sum();
        IdleRow {
            kind: idle.kind.label(),
            queues: idle.queues,
            declared: idle.declared,
            stopped: idle.stopped.is_some(),
            timed_out: matches!(idle.stopped, Some(Stopped::Deadline)),
            error: match &idle.stopped {
                Some(Stopped::Failed(err)) => Some(err.clone()),
                _ => None,
            },
            declare_secs: idle.declare.as_secs_f64(),
            declared_per_sec: idle.declared as f64 / idle.declare.as_secs_f64(),
            delete_secs: idle.delete.as_secs_f64(),
            per_node_kib: (idle.vm_delta.iter())
                .map(|d| d.map(|b| b as f64 / 1024.0 / declared))
                .collect(),
            per_node_mib: idle.vm_delta.iter().map(|d| d.map(mib)).collect(),
            cluster_kib: cluster.map(|b| b as f64 / 1024.0 / declared),
            cluster_mib: cluster.map(mib),
            max_node_mib: idle.vm_delta.iter().flatten().max().copied().map(mib),
            list_kib: idle.queues_memory.map(|b| b as f64 / 1024.0 / declared),
            idle_cores: idle.idle_cores,
        }
    }
}

/// Quorum against classic v2 at one number of queues.
#[derive(Serialize, Clone)]
struct Comparison {
    queues: usize,
    classic: IdleRow,
    quorum: IdleRow,
    /// Quorum's growth of the three VMs together over classic's, and its declaration time
    /// over classic's (both only where both declared every queue).
    memory_ratio: Option<f64>,
    declare_ratio: Option<f64>,
    /// The CPU the idle quorum queues kept busy, in percent of the machine's, and whether
    /// that is more than `HEAVY_IDLE`.
    quorum_idle_percent: Option<f64>,
    heavy_idle: bool,
}

impl<'a> Context<'a> {
    fn new(run: &'a ClusterRun) -> Self {
        let f = &run.figures;
        let throughput: Vec<ThroughputRow> = (f.throughput.iter())
            .map(|q| ThroughputRow {
                kind: q.kind.label(),
                runs: (&q.runs).into(),
            })
            .collect();
        let idle: Vec<IdleRow> = f.idle.iter().map(IdleRow::new).collect();
        let comparisons = comparisons(f.idle.as_slice(), run.machine.cpus);
        Context {
            marks: Marks {
                begin: BEGIN,
                end: END,
            },
            machine: &run.machine,
            nodes: f.nodes,
            run_secs: run.run_time.as_secs_f64(),
            others_cpu_percent: run.others_cpu.map(|share| share * 100.0),
            disturbed: run.others_cpu.is_some_and(|share| share > crate::DISTURBED),
            events: f.events,
            deadline_secs: f.deadline.as_secs(),
            empty_cores: f.empty_cores,
            throughput_ratio: match &throughput[..] {
                [classic, quorum] if classic.runs.median > 0.0 => {
                    Some(quorum.runs.median / classic.runs.median)
                }
                _ => None,
            },
            throughput,
            idle,
            largest: comparisons.last().cloned(),
            comparisons,
        }
    }
}

/// Quorum against classic v2 at each number of queues both types were asked for, fewest
/// first, on a machine of `cpus` CPUs.
fn comparisons(idle: &[IdleOnCluster], cpus: usize) -> Vec<Comparison> {
    use crate::amqp::QueueType::{ClassicV2, Quorum};
    let mut counts: Vec<usize> = idle.iter().map(|i| i.queues).collect();
    counts.sort_unstable();
    counts.dedup();
    counts
        .into_iter()
        .filter_map(|queues| {
            let of = |kind| idle.iter().find(|i| i.kind == kind && i.queues == queues);
            let (classic, quorum) = (of(ClassicV2)?, of(Quorum)?);
            let whole = classic.stopped.is_none() && quorum.stopped.is_none();
            let (classic, quorum) = (IdleRow::new(classic), IdleRow::new(quorum));
            let ratio = |q: Option<f64>, c: Option<f64>| match (q, c) {
                (Some(q), Some(c)) if whole && c > 0.0 => Some(q / c),
                _ => None,
            };
            let idle_share = quorum.idle_cores.map(|cores| cores / cpus.max(1) as f64);
            Some(Comparison {
                queues,
                quorum_idle_percent: idle_share.map(|share| share * 100.0),
                heavy_idle: idle_share.is_some_and(|share| share > HEAVY_IDLE),
                memory_ratio: ratio(quorum.cluster_mib, classic.cluster_mib),
                declare_ratio: ratio(Some(quorum.declare_secs), Some(classic.declare_secs)),
                classic,
                quorum,
            })
        })
        .collect()
}
