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

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hookbus_contracts::owners::Members;
use hookbus_contracts::payload::now_ms;
use hookbus_contracts::HookId;
use hookbus_runtime::activity::HookActivity;
use hookbus_runtime::store::HookStore;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// How long a deliverer's lease runs: the longest a dead deliverer's hooks wait for their
/// other owner alone.
pub const LEASE: Duration = Duration::from_secs(3);
pub const RENEW_EVERY: Duration = Duration::from_secs(1);
/// How often the active hooks are read: the longest a hook's first event waits for its
/// consumers to start (besides starting them).
pub const READ_ACTIVITY_EVERY: Duration = Duration::from_millis(250);
/// How long a hook reported busy is consumed by every deliverer after the last report.
pub const BUSY_FOR: Duration = Duration::from_secs(30);

/// Hook id → until when it is active (epoch ms), as last read.
pub type ActiveHooks = HashMap<HookId, i64>;

pub struct Membership {
    instance: String,
    /// Owners of an idle hook (`HOOKBUS_HOOK_OWNERS`; 0: every deliverer consumes every hook).
    owners: usize,
    members: watch::Sender<Option<Arc<Members>>>,
    /// Hooks found busy since the last renewal.
    busy: Mutex<HashSet<HookId>>,
    /// `None` when activity is not tracked (every enabled hook is consumed).
    activity: Option<HookActivity>,
    /// The active hooks as last read; `None` before the first read.
    active: watch::Sender<Option<Arc<ActiveHooks>>>,
    /// Hooks delivered for since the last tick: kept active.
    delivering: Mutex<HashSet<HookId>>,
}

impl Membership {
    pub fn new(owners: usize, activity: Option<HookActivity>) -> Membership {
        Membership {
            instance: uuid::Uuid::now_v7().simple().to_string(),
            owners,
            members: watch::channel(None).0,
            busy: Mutex::default(),
            activity,
            active: watch::channel(None).0,
            delivering: Mutex::default(),
        }
    }

    /// Whether `hook` is active (its queue is to be consumed); always, when activity is
    /// not tracked.
    pub fn is_active(&self, hook: &HookId) -> bool {
        self.activity.is_none()
            || self
                .active
                .borrow()
                .as_ref()
                .is_some_and(|active| active.contains_key(hook))
    }

    /// Whether activity is tracked: routers then declare the queue of a hook before it is
    /// active, and a deliverer consumes only queues that exist.
    pub fn tracks_activity(&self) -> bool {
        self.activity.is_some()
    }

    /// Whether the active hooks have been read (or need not be).
    pub fn knows_activity(&self) -> bool {
        self.activity.is_none() || self.active.borrow().is_some()
    }

    /// Notified when the active hooks change.
    pub fn subscribe_activity(&self) -> watch::Receiver<Option<Arc<ActiveHooks>>> {
        self.active.subscribe()
    }

    /// This deliverer took a delivery of `hook`: it stays active.
    pub fn note_delivering(&self, hook: &HookId) {
        if self.activity.is_some() {
            let mut delivering = self.delivering.lock().expect("delivering lock");
            if !delivering.contains(hook) {
                delivering.insert(hook.clone());
            }
        }
    }

    /// Makes sure `hook` is still active when a retry due in `wait` comes back to its queue
    /// (a queue deleted meanwhile would drop it): written to Redis unless the last read
    /// already covers it.
    pub async fn hold_for_retry(
        &self,
        hook: &HookId,
        wait: Duration,
    ) -> Result<(), hookbus_runtime::store::StoreError> {
        let Some(activity) = &self.activity else {
            return Ok(());
        };
        let needed = now_ms() + (wait + activity.idle().refresh()).as_millis() as i64;
        let covered = self
            .active
            .borrow()
            .as_ref()
            .and_then(|active| active.get(hook).copied())
            .is_some_and(|until| until >= needed);
        if covered {
            return Ok(());
        }
        activity.hold(&[(hook, wait)]).await
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
    let mut renew = tokio::time::interval(RENEW_EVERY);
    renew.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut read = tokio::time::interval(READ_ACTIVITY_EVERY);
    read.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let (sharing, tracking) = (membership.owners > 0, membership.activity.is_some());
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = read.tick(), if tracking => {
                if let Some(activity) = &membership.activity {
                    read_activity(activity, &membership).await;
                }
                continue;
            }
            _ = renew.tick(), if sharing => {}
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
    if membership.owners == 0 {
        return;
    }
    if let Err(err) = store.drop_deliverer(&membership.instance).await {
        tracing::debug!(error = %err, "deliverer lease not ended; it runs out");
    }
}

/// Keeps the hooks delivered for active, then reads the active hooks.
async fn read_activity(activity: &HookActivity, membership: &Membership) {
    let delivering: Vec<HookId> = membership
        .delivering
        .lock()
        .expect("delivering lock")
        .drain()
        .collect();
    let held: Vec<(&HookId, Duration)> = delivering.iter().map(|h| (h, Duration::ZERO)).collect();
    if let Err(err) = activity.hold(&held).await {
        tracing::debug!(error = %err, "activity of the hooks delivered for not written");
    }
    match activity.active().await {
        Ok(active) => {
            membership.active.send_if_modified(|current| {
                let changed = current.as_ref().is_none_or(|c| {
                    c.len() != active.len() || c.keys().any(|h| !active.contains_key(h))
                });
                *current = Some(Arc::new(active));
                changed
            });
        }
        Err(err) => {
            tracing::debug!(error = %err, "active hooks not read; consuming by the last read");
        }
    }
}
