//! This deliverer's place among the live deliverers: which hooks' queues it consumes.
//!
//! Each deliverer holds a lease in Redis (`{p}:deliverers`), renewed every [`RENEW_EVERY`]
//! for [`LEASE`], and reads back the live deliverers and the hooks reported busy; the
//! owners of each hook follow from that list alone (`hookbus_contracts::owners`), so a
//! deliverer that joins takes its share at the next renewal of each of the others, and the
//! hooks of one that dies are taken over when its lease runs out (a clean stop ends the
//! lease at once). A hook consumer that has its full per-hook limit of deliveries under way
//! reports its hook busy for [`BUSY_FOR`]: then every deliverer consumes it. While Redis
//! does not answer, the last list stands; before the first, this deliverer consumes every
//! hook.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hookbus_contracts::owners::Members;
use hookbus_contracts::HookId;
use hookbus_runtime::store::HookStore;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// How long a deliverer's lease runs: the longest a dead deliverer's hooks wait for their
/// other owner alone.
pub const LEASE: Duration = Duration::from_secs(3);
pub const RENEW_EVERY: Duration = Duration::from_secs(1);
/// How long a hook reported busy is consumed by every deliverer after the last report.
pub const BUSY_FOR: Duration = Duration::from_secs(30);

pub struct Membership {
    instance: String,
    /// Owners of an idle hook (`HOOKBUS_HOOK_OWNERS`; 0: every deliverer consumes every hook).
    owners: usize,
    members: watch::Sender<Option<Arc<Members>>>,
    /// Hooks found busy since the last renewal.
    busy: Mutex<HashSet<HookId>>,
}

impl Membership {
    pub fn new(owners: usize) -> Membership {
        Membership {
            instance: uuid::Uuid::now_v7().simple().to_string(),
            owners,
            members: watch::channel(None).0,
            busy: Mutex::default(),
        }
    }

    /// Whether this deliverer consumes `hook`'s queue now.
    pub fn owns(&self, hook: &HookId) -> bool {
        self.members
            .borrow()
            .as_ref()
            .is_none_or(|m| m.owns(&self.instance, hook, self.owners))
    }

    /// Notified when the live deliverers or the busy hooks change.
    pub fn subscribe(&self) -> watch::Receiver<Option<Arc<Members>>> {
        self.members.subscribe()
    }

    /// A consumer of `hook` has its full limit of deliveries under way.
    pub fn report_busy(&self, hook: &HookId) {
        if self.owners > 0 {
            self.busy.lock().expect("busy lock").insert(hook.clone());
        }
    }
}

/// Keeps this deliverer's lease and view of the others until `shutdown`, then ends the
/// lease.
pub async fn keep(store: HookStore, membership: Arc<Membership>, shutdown: CancellationToken) {
    if membership.owners == 0 {
        return;
    }
    let mut tick = tokio::time::interval(RENEW_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tick.tick() => {}
        }
        let busy: Vec<HookId> = membership.busy.lock().expect("busy lock").drain().collect();
        match store
            .renew_deliverer(&membership.instance, LEASE, &busy, BUSY_FOR)
            .await
        {
            Ok(mut members) => {
                members.live.sort();
                membership.members.send_if_modified(|current| {
                    let changed = current.as_deref() != Some(&members);
                    if changed {
                        *current = Some(Arc::new(members));
                    }
                    changed
                });
            }
            Err(err) => {
                tracing::debug!(error = %err, "deliverer lease not renewed; sharing hooks by the last list");
            }
        }
    }
    if let Err(err) = store.drop_deliverer(&membership.instance).await {
        tracing::debug!(error = %err, "deliverer lease not ended; it runs out");
    }
}
