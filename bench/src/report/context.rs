//! What the report's templates are handed: the figures of a run as rows and numbers, with
//! every ratio, share and verdict already computed here, so that the templates only choose
//! the words and how many digits a number shows. The thresholds of issue 8's targets are
//! here too; the templates state them in words.

use std::time::Duration;

use serde::Serialize;

use super::Report;
use crate::figures::{ms, LatencyRun, Runs};
use crate::load::{PathFigures, Plan};
use crate::machine::Machine;
use crate::queues::{per_queue, QueueFigures};
use crate::scale::{Scale, ScalePoint};
use crate::scenarios::{self, Isolation, IsolationRun, ScalingPoint, Storm};

/// One hook's share of the bare limit that meets its target.
const ONE_HOOK: f64 = 0.70;
/// The largest p99 of hookbus against the bare path's, below saturation, that meets its target.
const P99: f64 = 2.0;
/// A paced run that delivered less than this share of its rate was past saturation.
const KEPT_UP: f64 = 0.98;
/// The largest growth of the router's CPU time per event that counts as flat, and below
/// this a fall worth explaining.
const ROUTER_GROWTH: f64 = 1.10;
const ROUTER_FALL: f64 = 0.90;
/// The throughput of 4 deliverers against one that meets its target.
const SCALING: f64 = 3.5;
/// The good hooks' share of their throughput next to a hanging hook that meets its target.
const ISOLATION: f64 = 0.90;

/// The root of what the templates see.
#[derive(Serialize)]
pub struct Context<'a> {
    /// The plot's file name, next to the Markdown.
    plot: &'a str,
    machine: &'a Machine,
    plan: &'a Plan,
    run_secs: f64,
    /// The share of the CPU other programs used during the run, in percent.
    others_cpu_percent: Option<f64>,
    throughput: Saturated,
    latency: Latencies,
    ratios: Ratios,
    queues: Option<Queues>,
    /// The cluster comparison's section, as it was written (`report::cluster`).
    cluster: Option<&'a str>,
    /// The console's section, as it was written (`report::console`).
    console: Option<&'a str>,
    /// The tracing section, as it was written (`report::TRACING`).
    tracing: Option<&'a str>,
    /// The section of `bench backlog` and `bench changes`, as it was written
    /// (`report::AT_SCALE`).
    at_scale: Option<&'a str>,
    scenarios: Scenarios,
    targets: Targets,
}

impl<'a> Context<'a> {
    pub fn new(report: &'a Report<'a>) -> Self {
        let bare = report.bare();
        let s = report.scenarios;
        Context {
            plot: report.plot,
            machine: &report.machine,
            plan: report.plan,
            run_secs: report.run_time.as_secs_f64(),
            others_cpu_percent: report.others_cpu.map(|share| share * 100.0),
            throughput: Saturated::new(report, bare),
            latency: Latencies {
                bare: report.bare.paced.iter().map(Latency::from).collect(),
                hookbus: report.hookbus.sdk.paced.iter().map(Latency::from).collect(),
            },
            ratios: Ratios::new(report.bare, &report.hookbus.sdk, &report.hookbus.wide),
            queues: report.queues.map(Queues::new),
            cluster: report.cluster,
            console: report.console,
            tracing: report.tracing,
            at_scale: report.at_scale,
            scenarios: Scenarios {
                fanout: s.fanout.as_ref().map(|runs| Fanout {
                    hooks: scenarios::FANOUT,
                    runs: runs.into(),
                    vs_bare: runs.median() / bare,
                }),
                scale: s.scale.as_ref().map(|scale| ScaleTable::new(scale, bare)),
                scaling: s.scaling.as_ref().map(|points| scaling(points, bare)),
                isolation: s
                    .isolation
                    .as_ref()
                    .map(|iso| IsolationTable::new(iso, bare)),
                storm: s.storm.as_ref().map(|storm| StormRow::new(storm, bare)),
            },
            targets: Targets::new(report, bare),
        }
    }
}

/// Repeated saturated runs: their size, median and range, messages per second.
#[derive(Serialize)]
pub(super) struct RunsRow {
    messages: usize,
    runs: usize,
    pub(super) median: f64,
    slowest: f64,
    fastest: f64,
}

impl From<&Runs> for RunsRow {
    fn from(runs: &Runs) -> Self {
        let (slowest, fastest) = runs.range();
        RunsRow {
            messages: runs.messages(),
            runs: runs.count(),
            median: runs.median(),
            slowest,
            fastest,
        }
    }
}

/// One path's saturated runs and their median against the bare limit.
#[derive(Serialize)]
struct PathRow {
    runs: RunsRow,
    vs_bare: f64,
}

impl PathRow {
    fn new(runs: &Runs, bare: f64) -> Self {
        PathRow {
            runs: runs.into(),
            vs_bare: runs.median() / bare,
        }
    }
}

/// The saturated one-hook table.
#[derive(Serialize)]
struct Saturated {
    bare: PathRow,
    sdk: PathRow,
    ingest: PathRow,
    wide: PathRow,
    /// Mean sizes of the bodies the receiver got.
    bare_body_bytes: u64,
    hookbus_body_bytes: u64,
}

impl Saturated {
    fn new(report: &Report, bare: f64) -> Self {
        let hookbus = report.hookbus;
        Saturated {
            bare: PathRow::new(&report.bare.saturated, bare),
            sdk: PathRow::new(&hookbus.sdk.saturated, bare),
            ingest: PathRow::new(&hookbus.ingest, bare),
            wide: PathRow::new(&hookbus.wide, bare),
            bare_body_bytes: report.bare.body_bytes,
            hookbus_body_bytes: hookbus.sdk.body_bytes,
        }
    }
}

/// A paced run, its percentiles in milliseconds.
#[derive(Serialize)]
struct Latency {
    rate: u32,
    samples: usize,
    arrived: f64,
    p50: f64,
    p99: f64,
    max: f64,
}

impl From<&LatencyRun> for Latency {
    fn from(run: &LatencyRun) -> Self {
        Latency {
            rate: run.rate,
            samples: run.samples,
            arrived: run.achieved_per_sec,
            p50: ms(run.p50),
            p99: ms(run.p99),
            max: ms(run.max),
        }
    }
}

#[derive(Serialize)]
struct Latencies {
    bare: Vec<Latency>,
    hookbus: Vec<Latency>,
}

/// hookbus's paced percentiles against the bare path's at each rate, and what raising the
/// per-hook limit did.
#[derive(Serialize)]
struct Ratios {
    paced: Vec<PacedRatio>,
    wide_change_percent: f64,
}

#[derive(Serialize)]
struct PacedRatio {
    rate: u32,
    p50: f64,
    p99: f64,
}

impl Ratios {
    fn new(bare: &PathFigures, hookbus: &PathFigures, wide: &Runs) -> Self {
        let ratio = |b: Duration, h: Duration| h.as_secs_f64() / b.as_secs_f64();
        Ratios {
            paced: (bare.paced.iter().zip(&hookbus.paced))
                .map(|(b, h)| PacedRatio {
                    rate: b.rate,
                    p50: ratio(b.p50, h.p50),
                    p99: ratio(b.p99, h.p99),
                })
                .collect(),
            wide_change_percent: (wide.median() / hookbus.saturated.median() - 1.0) * 100.0,
        }
    }
}

/// The queue type comparison.
#[derive(Serialize)]
struct Queues {
    rows: Vec<QueueRow>,
    verdict: Option<QueueVerdict>,
}

#[derive(Serialize)]
struct QueueRow {
    kind: &'static str,
    throughput: RunsRow,
    idle_queues: usize,
    declare_secs: f64,
    delete_secs: f64,
    /// Per idle queue, with its unit, or "n/a".
    memory: String,
    vm_growth: String,
}

/// Quorum against classic v2: each ratio is `None` where a figure is missing.
#[derive(Serialize)]
struct QueueVerdict {
    throughput: Option<f64>,
    memory: Option<f64>,
    vm_growth: Option<f64>,
    declare: Option<f64>,
    quorum_faster: bool,
}

impl Queues {
    fn new(queues: &[QueueFigures]) -> Self {
        let rows = queues
            .iter()
            .map(|q| QueueRow {
                kind: q.kind.label(),
                throughput: (&q.throughput).into(),
                idle_queues: q.idle.queues,
                declare_secs: q.idle.declare.as_secs_f64(),
                delete_secs: q.idle.delete.as_secs_f64(),
                memory: per_queue(q.idle.queues_memory.map(|b| b as i64), q.idle.queues),
                vm_growth: per_queue(q.idle.vm_delta, q.idle.queues),
            })
            .collect();
        let verdict = match queues {
            [classic, quorum] => {
                let ratio = |f: fn(&QueueFigures) -> Option<f64>| match (f(quorum), f(classic)) {
                    (Some(q), Some(c)) if c > 0.0 => Some(q / c),
                    _ => None,
                };
                Some(QueueVerdict {
                    throughput: ratio(|q| Some(q.throughput.median())),
                    memory: ratio(|q| q.idle.queues_memory.map(|b| b as f64)),
                    vm_growth: ratio(|q| q.idle.vm_delta.map(|b| b as f64)),
                    declare: ratio(|q| Some(q.idle.declare.as_secs_f64())),
                    quorum_faster: quorum.throughput.median() > classic.throughput.median(),
                })
            }
            _ => None,
        };
        Queues { rows, verdict }
    }
}

/// The scenarios beyond one hook, each `None` when skipped.
#[derive(Serialize)]
struct Scenarios {
    fanout: Option<Fanout>,
    scale: Option<ScaleTable>,
    scaling: Option<Vec<ScalingRow>>,
    isolation: Option<IsolationTable>,
    storm: Option<StormRow>,
}

#[derive(Serialize)]
struct Fanout {
    hooks: usize,
    runs: RunsRow,
    vs_bare: f64,
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / 1048576.0
}

/// The router process at each size of configuration, and what idle hooks cost in memory.
#[derive(Serialize)]
struct ScaleTable {
    points: Vec<ScaleRow>,
    memory: ScaleMemory,
}

#[derive(Serialize)]
struct ScaleRow {
    hooks: usize,
    router: RunsRow,
    vs_first: f64,
    vs_bare: f64,
    cpu_us: Option<f64>,
    cpu_vs_first: Option<f64>,
    rss_mib: Option<f64>,
    cache_mib: f64,
    stored_bytes: usize,
}

/// Memory per 1,000 idle hooks; each part `None` where it was not measured.
#[derive(Serialize)]
struct ScaleMemory {
    /// The router's resident memory grew less than its hook cache: within what the
    /// allocator keeps of freed memory, so not a figure per hook.
    router_noise: Option<RouterNoise>,
    router: Option<Growth>,
    cache_per_1000_mib: Option<f64>,
    deliverer: Option<Growth>,
}

#[derive(Serialize)]
struct RouterNoise {
    small: usize,
    small_mib: f64,
    big: usize,
    big_mib: f64,
    cache_growth_mib: f64,
}

/// A process's resident memory at two numbers of hooks, and its growth per 1,000.
#[derive(Serialize)]
struct Growth {
    per_1000_mib: f64,
    small: usize,
    small_mib: f64,
    big: usize,
    big_mib: f64,
}

impl ScaleTable {
    fn new(scale: &Scale, bare: f64) -> Self {
        let first = scale.points.first();
        let first_rate = first.map_or(1.0, |p| p.router.median());
        let first_cpu = first.and_then(|p| p.router_cpu_us);
        let points = scale
            .points
            .iter()
            .map(|p| ScaleRow {
                hooks: p.hooks,
                router: (&p.router).into(),
                vs_first: p.router.median() / first_rate,
                vs_bare: p.router.median() / bare,
                cpu_us: p.router_cpu_us,
                cpu_vs_first: p.router_cpu_us.zip(first_cpu).map(|(us, first)| us / first),
                rss_mib: p.router_rss.map(mib),
                cache_mib: p.cache_bytes as f64 / 1048576.0,
                stored_bytes: p.stored_bytes,
            })
            .collect();
        ScaleTable {
            points,
            memory: ScaleMemory::new(scale),
        }
    }
}

impl ScaleMemory {
    fn new(scale: &Scale) -> Self {
        let mut memory = ScaleMemory {
            router_noise: None,
            router: None,
            cache_per_1000_mib: None,
            deliverer: None,
        };
        if let (Some(small), Some(big)) = (scale.points.first(), scale.points.last()) {
            if big.hooks > small.hooks {
                memory.router_growth(small, big);
            }
        }
        if let [(few, Some(a)), (many, Some(b))] = scale.deliverer_rss[..] {
            memory.deliverer = Some(Growth {
                per_1000_mib: (mib(b) - mib(a)) * 1000.0 / (many - few) as f64,
                small: few,
                small_mib: mib(a),
                big: many,
                big_mib: mib(b),
            });
        }
        memory
    }

    /// The router's and its hook cache's growth from `small` to `big` hooks.
    fn router_growth(&mut self, small: &ScalePoint, big: &ScalePoint) {
        let per_1000 = |a: f64, b: f64| (b - a) * 1000.0 / (big.hooks - small.hooks) as f64;
        let cache_growth = (big.cache_bytes - small.cache_bytes) as f64 / 1048576.0;
        match (small.router_rss, big.router_rss) {
            // Resident memory also holds what the allocator keeps of freed memory (the
            // hooks' JSON while loading them): a growth below the cache's own is noise.
            (Some(a), Some(b)) if mib(b) - mib(a) < cache_growth => {
                self.router_noise = Some(RouterNoise {
                    small: small.hooks,
                    small_mib: mib(a),
                    big: big.hooks,
                    big_mib: mib(b),
                    cache_growth_mib: cache_growth,
                });
            }
            (Some(a), Some(b)) => {
                self.router = Some(Growth {
                    per_1000_mib: per_1000(mib(a), mib(b)),
                    small: small.hooks,
                    small_mib: mib(a),
                    big: big.hooks,
                    big_mib: mib(b),
                });
            }
            _ => {}
        }
        self.cache_per_1000_mib =
            Some(per_1000(small.cache_bytes as f64, big.cache_bytes as f64) / 1048576.0);
    }
}

/// A run of one hook through a number of deliverers.
#[derive(Serialize)]
struct ScalingRow {
    deliverers: usize,
    deliveries: usize,
    per_sec: f64,
    vs_one: f64,
    vs_bare: f64,
}

fn scaling(points: &[ScalingPoint], bare: f64) -> Vec<ScalingRow> {
    let one = points.first().map_or(1.0, |p| p.run.per_sec());
    points
        .iter()
        .map(|p| ScalingRow {
            deliverers: p.deliverers,
            deliveries: p.run.messages,
            per_sec: p.run.per_sec(),
            vs_one: p.run.per_sec() / one,
            vs_bare: p.run.per_sec() / bare,
        })
        .collect()
}

/// The good hooks alone, then next to a hanging one.
#[derive(Serialize)]
struct IsolationTable {
    good_hooks: usize,
    /// The paced runs' events per second, and the good hooks' deliveries per second.
    rate: u32,
    deliveries_per_sec: usize,
    alone: IsolationRow,
    with_hang: IsolationRow,
    /// Next to the hanging hook against alone: saturated throughput (percent), p99 paced
    /// and saturated.
    kept_percent: f64,
    paced_p99: f64,
    saturated_p99: f64,
}

#[derive(Serialize)]
struct IsolationRow {
    deliveries: usize,
    per_sec: f64,
    vs_bare: f64,
    /// Of the saturated run, in milliseconds.
    p99: f64,
    paced: Latency,
}

impl IsolationRow {
    fn new(run: &IsolationRun, bare: f64) -> Self {
        IsolationRow {
            deliveries: run.run.messages,
            per_sec: run.run.per_sec(),
            vs_bare: run.run.per_sec() / bare,
            p99: ms(run.latency.p99),
            paced: (&run.paced).into(),
        }
    }
}

/// The good hooks' throughput next to the hanging hook against alone.
fn isolation_kept(iso: &Isolation) -> f64 {
    iso.with_hang.run.per_sec() / iso.alone.run.per_sec()
}

/// The good hooks' paced p99 next to the hanging hook against alone.
fn isolation_paced_p99(iso: &Isolation) -> f64 {
    iso.with_hang.paced.p99.as_secs_f64() / iso.alone.paced.p99.as_secs_f64()
}

impl IsolationTable {
    fn new(iso: &Isolation, bare: f64) -> Self {
        IsolationTable {
            good_hooks: scenarios::GOOD_HOOKS,
            rate: scenarios::ISOLATION_RATE,
            deliveries_per_sec: scenarios::ISOLATION_RATE as usize * scenarios::GOOD_HOOKS,
            alone: IsolationRow::new(&iso.alone, bare),
            with_hang: IsolationRow::new(&iso.with_hang, bare),
            kept_percent: isolation_kept(iso) * 100.0,
            paced_p99: isolation_paced_p99(iso),
            saturated_p99: iso.with_hang.latency.p99.as_secs_f64()
                / iso.alone.latency.p99.as_secs_f64(),
        }
    }
}

#[derive(Serialize)]
struct StormRow {
    retry_after_secs: f64,
    events: usize,
    failed_first: usize,
    per_sec: f64,
    vs_bare: f64,
    drain_secs: f64,
}

impl StormRow {
    fn new(storm: &Storm, bare: f64) -> Self {
        StormRow {
            retry_after_secs: storm.schedule.as_secs_f64(),
            events: storm.run.messages,
            failed_first: storm.failed_first,
            per_sec: storm.run.per_sec(),
            vs_bare: storm.run.per_sec() / bare,
            drain_secs: storm.drain.as_secs_f64(),
        }
    }
}

/// Each target of issue 8 that the run measured, with its verdict.
#[derive(Serialize)]
struct Targets {
    one_hook: Target,
    /// The paced rates a path did not keep up with, left out of the p99 target.
    beyond: Vec<Beyond>,
    p99: Option<P99Target>,
    scale: Option<ScaleTarget>,
    scaling: Option<ScalingTarget>,
    isolation: Option<IsolationTarget>,
}

/// A measured figure and whether it met its target.
#[derive(Serialize)]
struct Target {
    value: f64,
    met: bool,
}

impl Target {
    fn at_least(value: f64, target: f64) -> Self {
        Target {
            value,
            met: value >= target,
        }
    }
}

#[derive(Serialize)]
struct Beyond {
    rate: u32,
    bare: f64,
    hookbus: f64,
}

/// The worst p99 ratio below saturation, and how close each path ran to its own saturation
/// at that rate (percent), which explains a miss.
#[derive(Serialize)]
struct P99Target {
    worst: f64,
    rate: u32,
    met: bool,
    /// The rates within the target.
    within: Vec<u32>,
    bare_load_percent: f64,
    hookbus_load_percent: f64,
}

/// The router's CPU time per event from the smallest to the largest configuration, and its
/// events per second there (percent of the smallest's).
#[derive(Serialize)]
struct ScaleTarget {
    small: usize,
    big: usize,
    events_percent: f64,
    /// `None` without CPU times from /proc.
    cpu: Option<RouterCpu>,
}

#[derive(Serialize)]
struct RouterCpu {
    small_us: f64,
    big_us: f64,
    change: f64,
    met: bool,
    /// Fell by more than the spread that counts as flat.
    fell: bool,
}

#[derive(Serialize)]
struct ScalingTarget {
    deliverers: usize,
    ratio: Target,
}

#[derive(Serialize)]
struct IsolationTarget {
    /// Percent of the throughput without the hanging hook.
    kept_percent: f64,
    met: bool,
    paced_p99: f64,
}

impl Targets {
    fn new(report: &Report, bare: f64) -> Self {
        let s = report.scenarios;
        let one = report.hookbus.sdk.saturated.median() / bare;
        Targets {
            one_hook: Target {
                value: one * 100.0,
                met: one >= ONE_HOOK,
            },
            beyond: Vec::new(),
            p99: None,
            scale: s.scale.as_ref().and_then(scale_target),
            scaling: s.scaling.as_ref().and_then(|points| {
                let (one, last) = (points.first()?, points.last()?);
                Some(ScalingTarget {
                    deliverers: last.deliverers,
                    ratio: Target::at_least(last.run.per_sec() / one.run.per_sec(), SCALING),
                })
            }),
            isolation: s.isolation.as_ref().map(|iso| IsolationTarget {
                kept_percent: isolation_kept(iso) * 100.0,
                met: isolation_kept(iso) >= ISOLATION,
                paced_p99: isolation_paced_p99(iso),
            }),
        }
        .latency(report)
    }

    /// The p99 target, over the rates both paths kept up with.
    fn latency(mut self, report: &Report) -> Self {
        // A path that delivered less than it was offered was past its saturation there: its
        // latency is a growing queue, and the rate is not "below saturation".
        let kept_up = |run: &LatencyRun| run.achieved_per_sec >= KEPT_UP * f64::from(run.rate);
        let (below, beyond): (Vec<_>, Vec<_>) = (report.bare.paced.iter())
            .zip(&report.hookbus.sdk.paced)
            .partition(|(b, h)| kept_up(b) && kept_up(h));
        self.beyond = beyond
            .iter()
            .map(|(b, h)| Beyond {
                rate: b.rate,
                bare: b.achieved_per_sec,
                hookbus: h.achieved_per_sec,
            })
            .collect();
        let ratios: Vec<(u32, f64)> = below
            .iter()
            .map(|(b, h)| (b.rate, h.p99.as_secs_f64() / b.p99.as_secs_f64()))
            .collect();
        self.p99 = ratios
            .iter()
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .map(|&(rate, worst)| {
                let load = |saturated: &Runs| f64::from(rate) / saturated.median() * 100.0;
                P99Target {
                    worst,
                    rate,
                    met: worst <= P99,
                    within: (ratios.iter())
                        .filter(|(_, r)| *r <= P99)
                        .map(|(rate, _)| *rate)
                        .collect(),
                    bare_load_percent: load(&report.bare.saturated),
                    hookbus_load_percent: load(&report.hookbus.sdk.saturated),
                }
            });
        self
    }
}

fn scale_target(scale: &Scale) -> Option<ScaleTarget> {
    let (small, big) = (scale.points.first()?, scale.points.last()?);
    let rate = big.router.median() / small.router.median();
    Some(ScaleTarget {
        small: small.hooks,
        big: big.hooks,
        events_percent: rate * 100.0,
        cpu: small.router_cpu_us.zip(big.router_cpu_us).map(|(a, b)| {
            let change = b / a;
            RouterCpu {
                small_us: a,
                big_us: b,
                change,
                met: change <= ROUTER_GROWTH,
                fell: change < ROUTER_FALL,
            }
        }),
    })
}
