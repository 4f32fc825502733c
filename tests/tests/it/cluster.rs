//! On a RabbitMQ cluster (three private nodes on loopback): a node lost under a stream of
//! events loses none of them. The producer, the router and the deliverers are given every
//! node (`HOOKBUS_AMQP_URL` as a list), fail over to another when theirs is killed, and
//! every event the SDK confirmed reaches its receiver, from the quorum queues that held it.

use std::collections::HashSet;
use std::time::Duration;

use hookbus_contracts::EventName;
use hookbus_producer::Publisher;
use hookbus_tests::cluster::RabbitCluster;
use hookbus_tests::pipeline::Servers;
use hookbus_tests::{check, eventually, Pipeline, Receiver};

const EVENTS: usize = 400;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn losing_the_node_every_process_uses_loses_no_event() {
    let cluster = RabbitCluster::start().await;
    let servers = Servers {
        amqp_url: cluster.amqp_urls(),
        ..Servers::default()
    };
    let p = Pipeline::start_on("cluster", servers.clone(), &[Duration::from_millis(300)], 2).await;
    let receiver = Receiver::start().await;
    // Slow enough that the kill lands with a backlog in the hook's queue.
    receiver.set_delay(Duration::from_millis(5));
    p.create_hook(&["User.Created"], &receiver.url("h")).await;
    let publisher = Publisher::connect(&servers.amqp_url, &p.prefix)
        .await
        .unwrap();
    // Every service of this test runs in this process, so all connected to the same node
    // (processes start at the node their process id picks): that is the one to lose.
    let used = std::process::id() as usize % cluster.nodes.len();

    let name = EventName::parse("User.Created").unwrap();
    let mut accepted = HashSet::new();
    for i in 0..EVENTS {
        if i == EVENTS / 2 {
            cluster.nodes[used].kill().await;
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

    eventually(
        "every confirmed event to reach the receiver",
        Duration::from_secs(180),
        async || {
            let got = receiver.webhook_ids();
            check(accepted.difference(&got).count(), |missing| *missing == 0)
        },
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
