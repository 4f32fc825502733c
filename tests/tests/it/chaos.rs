//! The chaos soak, short: a few thousand events at a steady rate through the ingest and the
//! SDK, to four hooks (one slow, one failing for a while), on a three-node cluster with two
//! routers and three deliverers in processes of their own, while a deliverer, a router and a
//! broker node are killed (`kill -9`) and started again. Every accepted event reaches every
//! hook, and every process is ready again after each fault. The long run is
//! `bench chaos` (`docs/RELIABILITY.md`); both run `hookbus_tests::chaos`.

use std::time::Duration;

use hookbus_tests::chaos::{self, Fault, Launcher, Plan};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_soak_with_kills_loses_no_event() {
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let plan = Plan {
        events: 4_000,
        rate: 100.0,
        faults: vec![Fault::DelivererKill, Fault::RouterKill, Fault::NodeKill],
        routers: 2,
        deliverers: 3,
        launcher: Launcher {
            program: env!("CARGO_BIN_EXE_hookbus-svc").into(),
            args: Vec::new(),
        },
        log_dir: std::env::temp_dir().join(format!("hookbus-chaos-test-{seed}")),
        process_down: Duration::from_secs(2),
        node_down: Duration::from_secs(5),
        long_down: Duration::ZERO,
        slow_delay: Duration::from_millis(20),
        failing: (Duration::from_secs(5), Duration::from_secs(8)),
        drain: Duration::from_secs(90),
        seed,
        progress: None,
    };
    let summary = chaos::run(&plan).await.expect("the soak runs");
    let report = serde_json::to_string_pretty(&summary).unwrap();
    println!("{report}");
    assert_eq!(
        summary.lost,
        0,
        "accepted events lost (logs in {}): {report}",
        plan.log_dir.display()
    );
    assert_eq!(
        summary.accepted,
        summary.accepted_via_ingest + summary.accepted_via_sdk
    );
    assert!(summary.accepted >= plan.events as u64, "{report}");
    assert_eq!(summary.faults.len(), plan.faults.len(), "{report}");
    for fault in &summary.faults {
        assert!(
            fault.ready_back_s.is_some(),
            "a process never became ready again: {report}"
        );
        assert!(
            fault.ingest_back_s.is_some(),
            "the ingest never accepted again: {report}"
        );
    }
    // The failing hook did fail, and got everything after it recovered.
    let failing = summary.hooks.iter().find(|h| h.hook == "failing").unwrap();
    assert!(failing.failed_attempts > 0, "{report}");
    let _ = std::fs::remove_dir_all(&plan.log_dir);
}
