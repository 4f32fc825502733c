//! The templates' regression test: hand-built figures rendered through the report's
//! templates (`bench/templates/`) and compared byte for byte with the fixtures in
//! `bench/fixtures/report/`, so that a change to a template, or to what the Rust side hands
//! it, shows as a difference in the documents it writes. The first fixture holds the figures
//! of a real run, the one `docs/BENCHMARKS.md` was written from (rendered, they gave that file
//! byte for byte when the fixture was made); the others take the branches that run did not:
//! targets missed, queues and scenarios skipped, CPU figures missing, and the quick run that
//! skips all but the one-hook paths. The fixtures were captured from the report as it was
//! before its words moved into templates, and have changed since only on purpose.
//! `BLESS=1 cargo test -p hookbus-bench report` rewrites them from what the report now
//! renders: do that only for a change meant to alter the output, and read their diff.
use std::path::PathBuf;
use std::time::Duration;

use super::cluster::{ClusterReport, SECTION};
use super::console;
use super::Report;
use crate::amqp::QueueType;
use crate::cluster::{ClusterFigures, ClusterRun, IdleOnCluster, OneQueue, Stopped};
use crate::figures::{LatencyRun, Runs, Throughput};
use crate::load::{PathFigures, Plan};
use crate::machine::Machine;
use crate::pipeline::HookbusFigures;
use crate::queues::{IdleCost, QueueFigures};
use crate::scale::{Scale, ScalePoint};
use crate::scenarios::{self, Isolation, IsolationRun, ScalingPoint, Storm};

/// `messages` arriving at `per_sec`.
fn run(messages: usize, per_sec: f64) -> Throughput {
    Throughput {
        messages,
        elapsed: Duration::from_secs_f64(messages as f64 / per_sec),
    }
}

/// Three runs of `messages`: the slowest, the median and the fastest, messages per second.
fn runs(messages: usize, [slowest, median, fastest]: [f64; 3]) -> Runs {
    Runs::new(vec![
        run(messages, median),
        run(messages, slowest),
        run(messages, fastest),
    ])
}

fn ms(ms: f64) -> Duration {
    Duration::from_secs_f64(ms / 1000.0)
}

/// A paced run of 5 s at `rate` that arrived at `arrived`: `[p50, p99, max]` in milliseconds.
fn paced(rate: u32, arrived: f64, [p50, p99, max]: [f64; 3]) -> LatencyRun {
    LatencyRun {
        rate,
        samples: rate as usize * 5,
        p50: ms(p50),
        p99: ms(p99),
        max: ms(max),
        achieved_per_sec: arrived,
    }
}

/// One paced run in the measured run: its rate, then the bare path's and hookbus's (arrived
/// at, `[p50, p99, max]` in milliseconds).
type PacedRow = (u32, (f64, [f64; 3]), (f64, [f64; 3]));

#[rustfmt::skip]
const PACED: [PacedRow; 5] = [
    (100, (100.0, [1.61, 2.65, 5.69]), (100.0, [1.66, 2.81, 3.41])),
    (920, (920.0, [2.05, 4.48, 9.46]), (920.0, [2.22, 4.52, 7.51])),
    (1000, (1000.0, [2.05, 4.59, 7.41]), (1000.0, [2.44, 5.20, 9.22])),
    (4600, (4597.0, [4.17, 8.31, 14.22]), (4596.0, [6.25, 12.94, 20.81])),
    (8280, (8268.0, [8.372, 15.49, 21.33]), (8014.0, [112.29, 241.83, 257.87])),
];

/// One path's paced runs of the measured run, picked from `PACED` by `path`.
fn paced_runs(path: fn(PacedRow) -> LatencyRun) -> Vec<LatencyRun> {
    PACED.into_iter().map(path).collect()
}

fn mib(mib: f64) -> u64 {
    (mib * 1048576.0).round() as u64
}

fn kib_per_queue(kib: f64, queues: usize) -> u64 {
    (kib * 1024.0 * queues as f64).round() as u64
}

/// Everything a report takes, owned.
struct Measured {
    machine: fn() -> Machine,
    plan: Plan,
    bare: PathFigures,
    hookbus: HookbusFigures,
    queues: Option<Vec<QueueFigures>>,
    scenarios: scenarios::Figures,
    run_time: Duration,
    others_cpu: Option<f64>,
}

impl Measured {
    fn report(&self) -> Report<'_> {
        Report {
            plot: "benchmarks.png",
            machine: (self.machine)(),
            plan: &self.plan,
            bare: &self.bare,
            hookbus: &self.hookbus,
            queues: self.queues.as_deref(),
            scenarios: &self.scenarios,
            cluster: None,
            console: None,
            tracing: None,
            at_scale: None,
            run_time: self.run_time,
            others_cpu: self.others_cpu,
        }
    }
}

fn machine() -> Machine {
    Machine {
        date: "2026-11-25 02:09 UTC".into(),
        cpus: 2,
        cpu_model: "Intel(R) Xeon(R) Processor".into(),
        rustc: "rustc 1.95.0 (59807616e 2026-04-14)".into(),
        rabbitmq: "3.10.8".into(),
        erlang: "Erlang/OTP 25".into(),
    }
}

fn unknown_machine() -> Machine {
    Machine {
        date: String::new(),
        cpus: 0,
        cpu_model: "unknown".into(),
        rustc: "unknown".into(),
        rabbitmq: "unknown".into(),
        erlang: "unknown".into(),
    }
}

fn queue(kind: QueueType, throughput: [f64; 3], idle: IdleCost) -> QueueFigures {
    QueueFigures {
        kind,
        throughput: runs(20_000, throughput),
        idle,
    }
}

fn idle(declare: f64, delete: f64, memory_kib: Option<f64>, vm_kib: Option<f64>) -> IdleCost {
    IdleCost {
        queues: 1000,
        declare: Duration::from_secs_f64(declare),
        delete: Duration::from_secs_f64(delete),
        queues_memory: memory_kib.map(|kib| kib_per_queue(kib, 1000)),
        vm_delta: vm_kib.map(|kib| kib_per_queue(kib, 1000) as i64),
    }
}

/// `hooks` configured, the router's `rates`, its CPU time per event, its resident memory
/// and its hook cache's heap in bytes.
fn point(
    hooks: usize,
    rates: [f64; 3],
    cpu_us: Option<f64>,
    rss_mib: Option<f64>,
    cache_bytes: i64,
) -> ScalePoint {
    ScalePoint {
        hooks,
        router: runs(10_000, rates),
        router_cpu_us: cpu_us,
        router_rss: rss_mib.map(mib),
        cache_bytes,
        stored_bytes: 232,
    }
}

fn isolation_run(per_sec: f64, saturated_p99: f64, paced_ms: [f64; 3]) -> IsolationRun {
    IsolationRun {
        run: run(10_000, per_sec),
        latency: LatencyRun {
            samples: 10_000,
            ..paced(0, per_sec, [350.0, saturated_p99, saturated_p99 + 5.0])
        },
        paced: paced(scenarios::ISOLATION_RATE, 1000.0, paced_ms),
    }
}

/// The run `docs/BENCHMARKS.md` was written from (its figures, to the digits it shows).
fn measured() -> Measured {
    Measured {
        machine,
        plan: Plan {
            events: 20_000,
            warmup: 500,
            ingest_events: 10_000,
            rates: vec![100, 920, 1000, 4600, 8280],
            saturation: Some(9196.2),
            paced_secs: 5,
            idle_queues: 1000,
            repeats: 3,
        },
        bare: PathFigures {
            saturated: runs(20_000, [11687.0, 11891.0, 12027.0]),
            paced: paced_runs(|(rate, bare, _)| paced(rate, bare.0, bare.1)),
            body_bytes: 295,
        },
        hookbus: HookbusFigures {
            sdk: PathFigures {
                saturated: runs(20_000, [6777.0, 9048.0, 9228.0]),
                paced: paced_runs(|(rate, _, hookbus)| paced(rate, hookbus.0, hookbus.1)),
                body_bytes: 389,
            },
            ingest: runs(10_000, [6151.0, 6482.0, 6583.0]),
            wide: runs(20_000, [7165.0, 7304.0, 7639.0]),
        },
        queues: Some(vec![
            queue(
                QueueType::ClassicV2,
                [24299.0, 25110.0, 25184.0],
                idle(0.94, 0.9, Some(54.2), Some(29.14)),
            ),
            queue(
                QueueType::Quorum,
                [28527.0, 30722.0, 34024.0],
                idle(3.1, 1.2, Some(86.8), Some(129.66)),
            ),
        ]),
        scenarios: scenarios::Figures {
            fanout: Some(runs(20_000, [6635.0, 8071.0, 8330.0])),
            scale: Some(Scale {
                points: vec![
                    point(
                        10,
                        [11293.0, 11513.0, 11777.0],
                        Some(24.7),
                        Some(34.36),
                        4_200,
                    ),
                    point(
                        1000,
                        [10374.0, 10980.0, 11574.0],
                        Some(22.9),
                        Some(38.1),
                        420_000,
                    ),
                    point(
                        10000,
                        [11453.0, 11644.0, 11686.0],
                        Some(23.08),
                        Some(42.64),
                        4_121_000,
                    ),
                ],
                deliverer_rss: vec![(10, Some(mib(35.73))), (1010, Some(mib(62.38)))],
            }),
            scaling: Some(vec![
                ScalingPoint {
                    deliverers: 1,
                    run: run(1000, 303.0),
                },
                ScalingPoint {
                    deliverers: 2,
                    run: run(2000, 607.0),
                },
                ScalingPoint {
                    deliverers: 4,
                    run: run(4000, 1212.0),
                },
            ]),
            isolation: Some(Isolation {
                alone: isolation_run(9065.0, 702.64, [2.59, 5.63, 9.14]),
                with_hang: isolation_run(9669.0, 698.11, [2.39, 7.14, 13.12]),
            }),
            storm: Some(Storm {
                run: run(5000, 3025.0),
                drain: Duration::from_secs_f64(1.32),
                failed_first: 1000,
                schedule: Duration::from_secs(1),
            }),
        },
        run_time: Duration::from_secs_f64(263.2),
        others_cpu: Some(0.0),
    }
}

/// Every target missed, each with its gap explained; classic v2 the faster queue; the
/// router's resident memory growing less than its cache (the allocator's noise).
fn missed() -> Measured {
    let mut m = measured();
    m.machine = unknown_machine;
    m.plan.saturation = None;
    m.plan.rates = vec![100, 1000];
    m.others_cpu = None;
    m.hookbus.sdk.saturated = runs(20_000, [5000.0, 6000.0, 6100.0]);
    m.bare.paced.truncate(2);
    m.hookbus.sdk.paced = vec![
        paced(100, 100.0, [3.5, 7.0, 9.0]),
        paced(1000, 1000.0, [4.5, 11.0, 30.0]),
    ];
    let queues = m.queues.as_mut().unwrap();
    queues[1].throughput = runs(20_000, [20000.0, 21000.0, 22000.0]);
    queues[1].idle.vm_delta = None;
    let scenarios = &mut m.scenarios;
    let scale = scenarios.scale.as_mut().unwrap();
    scale.points[2].router_cpu_us = Some(31.0);
    scale.points[2].router_rss = Some(mib(35.0));
    scale.deliverer_rss[1].1 = None;
    scenarios.scaling.as_mut().unwrap()[2].run = run(4000, 900.0);
    scenarios.isolation.as_mut().unwrap().with_hang.run = run(10_000, 7000.0);
    m
}

/// Every optional part skipped, and no CPU or memory figures for the scale scenario (as
/// without /proc): the sentences that stand for what was not measured.
fn skipped() -> Measured {
    let mut m = measured();
    m.plan.saturation = None;
    m.plan.rates = vec![100, 1000];
    m.bare.paced.truncate(2);
    m.hookbus.sdk.paced.truncate(2);
    m.hookbus.sdk.paced[1].achieved_per_sec = 900.0;
    m.queues = None;
    let scale = m.scenarios.scale.take().map(|mut scale| {
        for p in &mut scale.points {
            p.router_cpu_us = None;
            p.router_rss = None;
        }
        scale.deliverer_rss.clear();
        scale
    });
    m.scenarios = scenarios::Figures {
        scale,
        ..Default::default()
    };
    m
}

/// The router's CPU time per event falling by more than a tenth (the spread between runs).
fn spread() -> Measured {
    let mut m = measured();
    let scale = m.scenarios.scale.as_mut().unwrap();
    scale.points[2].router_cpu_us = Some(20.0);
    m
}

/// The quick run of "Where the time goes": the queues and every scenario skipped.
fn quick() -> Measured {
    let mut m = measured();
    m.queues = None;
    m.scenarios = scenarios::Figures::default();
    m
}

fn fixture(file: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/report")
        .join(file)
}

/// `actual` against the fixture `file`, or written to it under `BLESS=1`.
fn check(file: &str, actual: &str) {
    let path = fixture(file);
    if std::env::var_os("BLESS").is_some() {
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (BLESS=1 writes it)", path.display()));
    if expected == actual {
        return;
    }
    let line = expected
        .lines()
        .zip(actual.lines())
        .position(|(e, a)| e != a)
        .unwrap_or_else(|| expected.lines().count().min(actual.lines().count()));
    panic!(
        "{file} differs from the rendered report, first at line {}:\n\
         fixture:  {:?}\nrendered: {:?}\n(lengths {} and {})",
        line + 1,
        expected.lines().nth(line),
        actual.lines().nth(line),
        expected.len(),
        actual.len()
    );
}

#[test]
fn the_report_renders_as_its_fixtures() {
    for (name, measured) in [
        ("measured", measured()),
        ("missed", missed()),
        ("skipped", skipped()),
        ("spread", spread()),
        ("quick", quick()),
    ] {
        let report = measured.report();
        check(&format!("{name}.md"), &report.markdown().unwrap());
        check(&format!("{name}.txt"), &report.tables().unwrap());
    }
}

/// Idle queues of `kind` on the cluster: `queues` declared in `declare` s and deleted in
/// `delete` s, each node's VM growth per queue and `list_queues memory` per queue in KiB.
fn on_cluster(
    kind: QueueType,
    queues: usize,
    [declare, delete]: [f64; 2],
    per_node_kib: [Option<f64>; 3],
    list_kib: Option<f64>,
) -> IdleOnCluster {
    IdleOnCluster {
        kind,
        queues,
        declared: queues,
        stopped: None,
        declare: Duration::from_secs_f64(declare),
        delete: Duration::from_secs_f64(delete),
        vm_delta: (per_node_kib.iter())
            .map(|kib| kib.map(|kib| kib_per_queue(kib, queues) as i64))
            .collect(),
        queues_memory: list_kib.map(|kib| kib_per_queue(kib, queues)),
        idle_cores: Some(match kind {
            QueueType::ClassicV2 => 0.02,
            QueueType::Quorum => queues as f64 / 10_000.0,
        }),
    }
}

/// The cluster run `docs/BENCHMARKS.md`'s cluster section was written from (its figures, to
/// the digits it shows).
fn cluster_run() -> ClusterRun {
    use QueueType::{ClassicV2, Quorum};
    ClusterRun {
        machine: machine(),
        figures: ClusterFigures {
            nodes: 3,
            events: 20_000,
            deadline: Duration::from_secs(900),
            empty_cores: Some(0.02),
            throughput: vec![
                OneQueue {
                    kind: ClassicV2,
                    runs: runs(20_000, [9000.0, 9500.0, 9900.0]),
                },
                OneQueue {
                    kind: Quorum,
                    runs: runs(20_000, [7000.0, 7500.0, 7900.0]),
                },
            ],
            idle: vec![
                on_cluster(
                    ClassicV2,
                    1000,
                    [1.0, 1.0],
                    [Some(40.0), Some(2.0), Some(2.0)],
                    Some(50.0),
                ),
                on_cluster(
                    ClassicV2,
                    10_000,
                    [10.0, 10.0],
                    [Some(40.0), Some(2.0), Some(2.0)],
                    Some(50.0),
                ),
                on_cluster(
                    Quorum,
                    1000,
                    [20.0, 10.0],
                    [Some(150.0), Some(120.0), Some(120.0)],
                    Some(90.0),
                ),
                on_cluster(
                    Quorum,
                    10_000,
                    [200.0, 100.0],
                    [Some(150.0), Some(120.0), Some(120.0)],
                    Some(90.0),
                ),
            ],
        },
        run_time: Duration::from_secs_f64(600.0),
        others_cpu: Some(0.01),
    }
}

/// The quorum declarations stopped: one failed, the one of the largest number at its
/// deadline; a node that did not answer, `list_queues` too slow, and the CPU share unknown.
fn cluster_stopped() -> ClusterRun {
    let mut run = cluster_run();
    run.machine = unknown_machine();
    run.others_cpu = None;
    let idle = &mut run.figures.idle;
    run.figures.empty_cores = None;
    idle[1].vm_delta[2] = None;
    idle[1].idle_cores = None;
    idle[2].declared = 600;
    idle[2].stopped = Some(Stopped::Failed("connection reset by peer".into()));
    idle[3] = IdleOnCluster {
        declared: 4321,
        stopped: Some(Stopped::Deadline),
        queues_memory: None,
        ..on_cluster(
            QueueType::Quorum,
            4321,
            [900.0, 50.0],
            [Some(150.0), Some(120.0), Some(120.0)],
            None,
        )
    };
    idle[3].queues = 10_000;
    run
}

#[test]
fn the_cluster_section_renders_as_its_fixtures() {
    for (name, run) in [
        ("cluster", cluster_run()),
        ("cluster-stopped", cluster_stopped()),
    ] {
        let report = ClusterReport { run: &run };
        check(&format!("{name}.md"), &report.section().unwrap());
        check(&format!("{name}.txt"), &report.tables().unwrap());
    }
}

/// `bench cluster-queues` places its section where the full report's template puts the
/// section it kept, and a second run of the command replaces it.
#[test]
fn a_full_run_keeps_the_cluster_section_where_the_command_placed_it() {
    let section = ClusterReport {
        run: &cluster_run(),
    }
    .section()
    .unwrap();
    let other = ClusterReport {
        run: &cluster_stopped(),
    }
    .section()
    .unwrap();
    let measured = measured();
    let mut report = measured.report();
    let without = report.markdown().unwrap();
    let placed = SECTION.place(&without, &section);
    report.cluster = Some(&section);
    assert_eq!(report.markdown().unwrap(), placed);
    assert_eq!(SECTION.extract(&placed), Some(section.as_str()));
    assert_eq!(SECTION.extract(&without), None);
    assert_eq!(
        SECTION.place(&placed, &other),
        SECTION.place(&without, &other)
    );
}

#[test]
fn a_full_run_keeps_the_console_section() {
    let section = format!(
        "{}\n## The console at 10 hooks\n{}\n",
        console::SECTION.begin,
        console::SECTION.end
    );
    let measured = measured();
    let mut report = measured.report();
    let without = report.markdown().unwrap();
    let placed = console::SECTION.place(&without, &section);
    report.console = Some(&section);
    assert_eq!(report.markdown().unwrap(), placed);
    assert!(placed.find("## The console").unwrap() < placed.find("## Notes").unwrap());
}

/// A full run keeps the tracing section of the file it replaces (`bench tracing`'s figures,
/// written by hand), and finds it again in what it wrote.
#[test]
fn a_full_run_keeps_the_tracing_section() {
    let document = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../docs/BENCHMARKS.md"
    ))
    .unwrap();
    let section = super::TRACING
        .extract(&document)
        .expect("docs/BENCHMARKS.md's tracing section");
    assert!(section.contains("## Tracing"), "{section}");
    let measured = measured();
    let mut report = measured.report();
    assert_eq!(super::TRACING.extract(&report.markdown().unwrap()), None);
    report.tracing = Some(section);
    let written = report.markdown().unwrap();
    assert_eq!(super::TRACING.extract(&written), Some(section));
}
