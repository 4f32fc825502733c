//! The delivery journal: one log record per attempt, written to Redis off the hot path.
//!
//! Attempts hand their record to a bounded channel and move on; one task drains it in
//! batches into a single Redis pipeline. A batch waits up to [`LINGER`] to fill: under load
//! that makes a few large writes a second instead of one per handful of records (with the
//! Redis commands of each write, the journal was the largest cost of the delivery path in
//! the benchmark), and a record is never more than that late in `recent-logs`. Logs are for
//! people, not for delivery guarantees: when Redis is slow and the channel is full, a record
//! is dropped and counted (`hookbus_delivery_logs_dropped_total`) rather than slowing
//! deliveries down.

use std::time::Duration;

use hookbus_contracts::logs::LogRecord;
use hookbus_runtime::logs::DeliveryLogs;
use prometheus::IntCounter;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

const CAPACITY: usize = 8192;
const BATCH: usize = 1024;
pub const LINGER: Duration = Duration::from_millis(100);

#[derive(Clone)]
pub struct Journal {
    tx: mpsc::Sender<LogRecord>,
    dropped: IntCounter,
}

impl Journal {
    /// The journal and the task that writes it. The task ends once every handle on the
    /// journal is gone and what they recorded is written, so the attempts that finish while
    /// a deliverer drains on shutdown are logged and counted too: await it last.
    pub fn start(logs: DeliveryLogs, dropped: IntCounter) -> (Journal, JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(CAPACITY);
        let writer = tokio::spawn(write(logs, rx));
        (Journal { tx, dropped }, writer)
    }

    pub fn record(&self, record: LogRecord) {
        if self.tx.try_send(record).is_err() {
            self.dropped.inc();
        }
    }
}

async fn write(logs: DeliveryLogs, mut rx: mpsc::Receiver<LogRecord>) {
    let mut batch = Vec::with_capacity(BATCH);
    loop {
        if rx.recv_many(&mut batch, BATCH).await == 0 {
            return;
        }
        let linger = tokio::time::sleep(LINGER);
        tokio::pin!(linger);
        while batch.len() < BATCH {
            let room = BATCH - batch.len();
            tokio::select! {
                n = rx.recv_many(&mut batch, room) => if n == 0 { break },
                _ = &mut linger => break,
            }
        }
        if let Err(err) = logs.record_all(&batch).await {
            tracing::warn!(error = %err, records = batch.len(), "delivery logs not written");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        batch.clear();
    }
}
