//! The bare broker limit: the same three hops as hookbus, with none of its logic.
//!
//! ```text
//! publisher ──confirm──► A (quorum) ──► relay ──confirm──► B (quorum) ──► deliverer ──POST──► receiver
//!                                        ack A after B's confirm    ack B after the 2xx
//! ```
//! A and B have hookbus's queue types (its events queue, and a per-hook queue of the default
//! `HOOKBUS_HOOK_QUEUE_TYPE`), so the ratio
//! hookbus/bare is the cost of hookbus's own work: exchanges, JSON decoding and encoding,
//! routing, two signatures, bookkeeping.

use anyhow::{anyhow, Result};
use futures::TryStreamExt;
use hmac::{Hmac, Mac};
use lapin::message::Delivery;
use lapin::options::{BasicAckOptions, BasicConsumeOptions};
use lapin::types::FieldTable;
use lapin::{Channel, Connection};
use sha2::Sha256;
use tokio::task::JoinError;

use crate::amqp::{self, QueueType, PREFETCH};
use crate::load::{self, Clock, PathFigures, Plan};
use crate::receiver::Receiver;

const SIGNING_KEY: &[u8] = b"bench-signing-key";
const SIGNATURE_HEADER: &str = "logto-signature-sha-256";

/// Measures the bare path; its queues are deleted whatever happens.
pub async fn run(clock: Clock, plan: &Plan) -> Result<PathFigures> {
    let receiver = Receiver::start(clock).await?;
    let prefix = amqp::unique_prefix("bare");
    let queues = [format!("{prefix}.a"), format!("{prefix}.b")];
    let admin = amqp::connect("hookbus-bench-admin").await?;
    let figures = declare_and_measure(clock, plan, &receiver, &admin, &queues).await;
    let cleaned = amqp::delete_queues(&admin, &queues).await;
    let _ = admin.close(200, "bare path done".into()).await;
    let figures = figures?;
    cleaned?;
    Ok(figures)
}

async fn declare_and_measure(
    clock: Clock,
    plan: &Plan,
    receiver: &Receiver,
    admin: &Connection,
    [a, b]: &[String; 2],
) -> Result<PathFigures> {
    let ch = admin.create_channel().await?;
    amqp::declare(&ch, a, QueueType::Quorum).await?;
    amqp::declare(&ch, b, QueueType::of_hooks()).await?;
    // One connection per role, as three processes would have.
    let relay_conn = amqp::connect("hookbus-bench-relay").await?;
    let deliver_conn = amqp::connect("hookbus-bench-deliverer").await?;
    let publish_conn = amqp::connect("hookbus-bench-publisher").await?;
    let mut stages = vec![
        tokio::spawn(relay(
            amqp::consume_channel(&relay_conn).await?,
            amqp::confirm_channel(&relay_conn).await?,
            a.clone(),
            b.clone(),
        )),
        tokio::spawn(deliver(
            amqp::consume_channel(&deliver_conn).await?,
            b.clone(),
            receiver.url(),
        )),
    ];
    let publish = &amqp::confirm_channel(&publish_conn).await?;
    let send = move |fields| async move {
        let body = serde_json::to_vec(&fields)?;
        amqp::publish(publish, a, &body).await
    };
    let figures = tokio::select! {
        figures = load::measure(clock, receiver, plan, send) => figures,
        (ended, _, _) = futures::future::select_all(stages.iter_mut()) => Err(stage_ended(ended)),
    };
    for stage in &stages {
        stage.abort();
    }
    for conn in [publish_conn, relay_conn, deliver_conn] {
        let _ = conn.close(200, "bare path done".into()).await;
    }
    figures
}

fn stage_ended(ended: Result<Result<()>, JoinError>) -> anyhow::Error {
    match ended {
        Ok(Ok(())) => anyhow!("a bare stage stopped consuming"),
        Ok(Err(err)) => err.context("a bare stage failed"),
        Err(err) => anyhow!("a bare stage panicked: {err}"),
    }
}

/// Moves every message of `from` to `to`, acking each once `to` has confirmed it.
async fn relay(consume: Channel, publish: Channel, from: String, to: String) -> Result<()> {
    let (publish, to) = (&publish, to.as_str());
    subscribe(&consume, &from, "bench-relay")
        .await?
        .try_for_each_concurrent(PREFETCH as usize, |msg| async move {
            amqp::publish(publish, to, &msg.data).await?;
            msg.ack(BasicAckOptions::default()).await?;
            Ok(())
        })
        .await
}

/// POSTs every message of `queue`, signed, to `url`; acks each after a 2xx.
async fn deliver(consume: Channel, queue: String, url: String) -> Result<()> {
    let http = &reqwest::Client::new();
    let url = url.as_str();
    subscribe(&consume, &queue, "bench-deliverer")
        .await?
        .try_for_each_concurrent(PREFETCH as usize, |msg| async move {
            let Delivery { data, acker, .. } = msg;
            http.post(url)
                .header("content-type", "application/json")
                .header(SIGNATURE_HEADER, sign(&data))
                .body(data)
                .send()
                .await?
                .error_for_status()?;
            acker.ack(BasicAckOptions::default()).await?;
            Ok(())
        })
        .await
}

async fn subscribe(
    ch: &Channel,
    queue: &str,
    tag: &str,
) -> Result<impl futures::Stream<Item = Result<Delivery>>> {
    let consumer = ch
        .basic_consume(
            queue.into(),
            tag.into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    Ok(consumer.map_err(anyhow::Error::from))
}

/// Hex HMAC-SHA256 of the body, as hookbus's Logto signature.
fn sign(body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(SIGNING_KEY).expect("HMAC takes any key");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}
