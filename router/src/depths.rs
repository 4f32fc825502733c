//! The events queues' depths, read from the broker every [`EVERY`]:
//! `hookbus_queue_messages{queue="events"}` (events waiting to be routed) and
//! `{queue="events_dead"}` (unreadable events parked for an operator).

use std::time::Duration;

use hookbus_runtime::broker;
use lapin::Connection;
use tokio_util::sync::CancellationToken;

use crate::consume::RouterCtx;

pub const EVERY: Duration = Duration::from_secs(10);

/// Exports depths until `over` fires (the end of the broker session).
pub async fn export(conn: &Connection, ctx: &RouterCtx, over: CancellationToken) {
    let Ok(mut ch) = conn.create_channel().await else {
        return;
    };
    let queues = [
        ("events", ctx.topology.events_queue()),
        ("events_dead", ctx.topology.events_dead_queue()),
    ];
    loop {
        for (label, queue) in &queues {
            if let Some(depth) = broker::depth(conn, &mut ch, queue).await {
                ctx.metrics
                    .queue_messages
                    .with_label_values(&[label])
                    .set(depth as i64);
            }
        }
        tokio::select! {
            _ = over.cancelled() => return broker::close_channel(&ch).await,
            _ = tokio::time::sleep(EVERY) => {}
        }
    }
}
