//! The per-hook queue type, measured on the bare broker: classic (version 2) against
//! quorum. For each type: throughput of confirmed publishes and acked consumes through one
//! queue, and what many idle queues cost the broker (hookbus has one queue per hook).

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use futures::{StreamExt, TryStreamExt};
use lapin::options::{BasicAckOptions, BasicConsumeOptions};
use lapin::types::FieldTable;
use lapin::Connection;

use crate::amqp::{self, QueueType, PREFETCH};
use crate::figures::{repeat, Runs, Throughput};
use crate::load::{self, Plan, WINDOW};
use crate::rabbitmqctl::Node;

/// Time given to the broker after declaring, before its memory is read.
const SETTLE: Duration = Duration::from_secs(3);
const CONSUME_TIMEOUT: Duration = Duration::from_secs(120);

pub struct QueueFigures {
    pub kind: QueueType,
    pub throughput: Runs,
    pub idle: IdleCost,
}

/// What `queues` idle queues of one type cost.
pub struct IdleCost {
    pub queues: usize,
    pub declare: Duration,
    pub delete: Duration,
    /// The queues' own memory (`rabbitmqctl list_queues memory`), summed, in bytes.
    pub queues_memory: Option<u64>,
    /// The Erlang VM's total memory after declaring minus before, in bytes.
    pub vm_delta: Option<i64>,
}

pub async fn run(plan: &Plan) -> Result<Vec<QueueFigures>> {
    let conn = amqp::connect("hookbus-bench-queues").await?;
    let figures = measure_both(&conn, plan).await;
    let _ = conn.close(200, "queue comparison done".into()).await;
    figures
}

async fn measure_both(conn: &Connection, plan: &Plan) -> Result<Vec<QueueFigures>> {
    let mut figures = Vec::new();
    for kind in [QueueType::ClassicV2, QueueType::Quorum] {
        println!("  ({})", kind.label());
        figures.push(measure(conn, kind, plan).await?);
    }
    Ok(figures)
}

async fn measure(conn: &Connection, kind: QueueType, plan: &Plan) -> Result<QueueFigures> {
    let throughput = repeat("one queue", plan.repeats, || {
        one_queue(conn, amqp::AMQP_URL, kind, plan.events)
    })
    .await?;
    let idle = idle_queues(conn, kind, plan.idle_queues).await?;
    println!(
        "  {} idle queues: declared in {:.1} s, {} by list_queues, {} VM growth",
        idle.queues,
        idle.declare.as_secs_f64(),
        per_queue(idle.queues_memory.map(|b| b as i64), idle.queues),
        per_queue(idle.vm_delta, idle.queues)
    );
    Ok(QueueFigures {
        kind,
        throughput,
        idle,
    })
}

/// Bytes per queue, for display.
pub fn per_queue(total: Option<i64>, queues: usize) -> String {
    match total {
        Some(bytes) => format!("{:.1} KiB/queue", bytes as f64 / queues as f64 / 1024.0),
        None => "n/a".into(),
    }
}

/// Publishes `n` messages into one queue on `conn` while a consumer, on a connection of its
/// own to the same broker (`url`), acks them; the queue is deleted afterwards whatever
/// happens.
pub async fn one_queue(
    conn: &Connection,
    url: &str,
    kind: QueueType,
    n: usize,
) -> Result<Throughput> {
    let queue = format!("{}.one", amqp::unique_prefix("queue"));
    // A bound on the whole pump, not only on its consumer: a broker connection that dies
    // mid-run must end the benchmark with an error, never hang it.
    let measured = tokio::time::timeout(CONSUME_TIMEOUT, pump(conn, url, kind, &queue, n))
        .await
        .unwrap_or_else(|_| {
            Err(anyhow::anyhow!(
                "one queue: no result within {CONSUME_TIMEOUT:?}"
            ))
        });
    amqp::delete_queues(conn, std::slice::from_ref(&queue)).await?;
    measured
}

async fn pump(
    conn: &Connection,
    url: &str,
    kind: QueueType,
    queue: &str,
    n: usize,
) -> Result<Throughput> {
    amqp::declare(&conn.create_channel().await?, queue, kind).await?;
    let consume_conn = amqp::connect_to(url, "hookbus-bench-consumer").await?;
    let consumer = amqp::consume_channel(&consume_conn)
        .await?
        .basic_consume(
            queue.into(),
            "bench-consumer".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    let started = Instant::now();
    let consuming = tokio::spawn(async move {
        consumer
            .take(n)
            .map_err(anyhow::Error::from)
            .try_for_each_concurrent(PREFETCH as usize, |msg| async move {
                msg.ack(BasicAckOptions::default()).await?;
                Ok(())
            })
            .await
            .map(|()| Instant::now())
    });
    let publish = &amqp::confirm_channel(conn).await?;
    let body = &serde_json::to_vec(&load::fields(0, 0))?;
    futures::stream::iter(0..n)
        .map(|_| amqp::publish(publish, queue, body))
        .buffer_unordered(WINDOW)
        .try_collect::<()>()
        .await?;
    let finished = tokio::time::timeout(CONSUME_TIMEOUT, consuming)
        .await
        .context("the consumer did not get every message in time")???;
    let _ = consume_conn.close(200, "pumped".into()).await;
    Ok(Throughput {
        messages: n,
        elapsed: finished - started,
    })
}

/// Declares `count` idle queues, reads the broker's memory, and deletes them (also after a
/// failed declare).
async fn idle_queues(conn: &Connection, kind: QueueType, count: usize) -> Result<IdleCost> {
    let prefix = amqp::unique_prefix("idle");
    let names: Vec<String> = (0..count).map(|i| format!("{prefix}.{i:05}")).collect();
    let before = Node::SHARED.vm_memory().await;
    let started = Instant::now();
    let declared = amqp::declare_all(conn, &names, kind).await;
    let declare = started.elapsed();
    let memory = match declared {
        Ok(()) => {
            tokio::time::sleep(SETTLE).await;
            let after = Node::SHARED.vm_memory().await;
            Ok((after, Node::SHARED.queues_memory(&prefix).await))
        }
        Err(err) => Err(err),
    };
    let started = Instant::now();
    let deleted = amqp::delete_queues(conn, &names).await;
    let delete = started.elapsed();
    let (after, queues_memory) = memory?;
    deleted?;
    Ok(IdleCost {
        queues: count,
        declare,
        delete,
        queues_memory,
        vm_delta: before.zip(after).map(|(b, a)| a as i64 - b as i64),
    })
}
