//! On a RabbitMQ cluster (three private nodes on loopback): a node lost under a stream of
//! events loses none of them. The producer, the router and the deliverers are given every
//! node (`HOOKBUS_AMQP_URL` as a list), fail over to another when theirs is killed, and
//! every event the SDK confirmed reaches every hook, from the quorum queues that held it,
//! while the lost node stays down.

use std::collections::HashSet;
use std::time::Duration;

use hookbus_contracts::EventName;
use hookbus_producer::Publisher;
use hookbus_tests::cluster::RabbitCluster;
use hookbus_tests::pipeline::Servers;
use hookbus_tests::{check, eventually, Pipeline, Receiver};

const EVENTS: usize = 400;
const HOOKS: [&str; 2] = ["a", "b"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn losing_the_first_node_loses_no_event() {
    let cluster = RabbitCluster::start().await;
    // Every service of this test runs in this process, so all start at the same node of
    // the list (the one their process id picks): the list is turned so that this is the
    // first node of the cluster, the one the others joined, which is the one to lose.
    let nodes = cluster.nodes.len();
    let start = std::process::id() as usize % nodes;
    let urls: Vec<String> = (0..nodes)
        .map(|i| cluster.nodes[(i + nodes - start) % nodes].amqp_url())
        .collect();
    let servers = Servers {
        amqp_url: urls.join(","),
        ..Servers::default()
    };
    let p = Pipeline::start_on("cluster", servers.clone(), &[Duration::from_millis(300)], 2).await;
    let receiver = Receiver::start().await;
    // Slow enough that the kill lands with a backlog in the hooks' queues.
    receiver.set_delay(Duration::from_millis(5));
    for hook in HOOKS {
        p.create_hook(&["User.Created"], &receiver.url(hook)).await;
    }
    let publisher = Publisher::connect(&servers.amqp_url, &p.prefix)
        .await
        .unwrap();

    let name = EventName::parse("User.Created").unwrap();
    let mut accepted = HashSet::new();
    for i in 0..EVENTS {
        if i == EVENTS / 2 {
            cluster.nodes[0].kill().await;
        }
        let fields = serde_json::json!({"data": {"id": format!("u{i}")}})
            .as_object()
            .unwrap()
            .clone();
        // As an auth service does: a publish that fails is tried again until confirmed.
        let what = format!("event {i} to be confirmed");
        let id = eventually(what, Duration::from_secs(60), async || {
            publisher
                .publish_event(name, fields.clone())
                .await
                .map_err(|e| e.to_string())
        })
        .await;
        accepted.insert(id.to_string());
    }

    let missing = |hook: &str| {
        let got: HashSet<String> = receiver
            .received()
            .iter()
            .filter(|r| r.path == hook)
            .map(|r| r.header("webhook-id").to_owned())
            .collect();
        accepted.difference(&got).count()
    };
    eventually(
        "every confirmed event to reach every hook, the first node still down",
        Duration::from_secs(180),
        async || check(HOOKS.map(missing), |m| m.iter().all(|n| *n == 0)),
    )
    .await;
    // Nothing was parked on the way: the failover cost time, not events.
    let parked = p
        .router_metric("hookbus_router_events_total{outcome=\"parked\"}")
        .await;
    assert_eq!(parked, 0.0, "events parked during the failover");
    let dead = p
        .deliverers_metric("hookbus_deliveries_total{outcome=\"dead_lettered\"}")
        .await;
    assert_eq!(dead, 0.0, "deliveries dead-lettered during the failover");
    // And every process is ready again, on the nodes left.
    for addr in p.addrs() {
        p.wait_ready(addr).await;
    }
}
