//! The router's lease: its promise, kept in Redis, that it routes by the current hook
//! configuration.
//!
//! With several routers, the one that answers a hook change is not the one that routes the
//! next event. So each router renews a lease (`{p}:router:{id}`, expiring) that states the
//! version it has loaded, and renewal is refused while the store holds another version. An
//! admin change answers only once every live router's lease states the new version
//! ([`await_applied`]); a router that cannot renew (Redis out of its reach) stops routing
//! before its lease runs out in Redis, so the admin may count it as gone. The lease is
//! renewed every refresh period and as soon as a new snapshot is installed, which a change
//! announced over pub/sub triggers within milliseconds.

use std::time::Duration;

use hookbus_runtime::health::Flag;
use hookbus_runtime::store::{HookCache, HookStore, REFRESH_EVERY};
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Until when this router may route (its lease, minus a margin for clock rates).
#[derive(Clone)]
pub struct Lease {
    valid_until: watch::Sender<Option<Instant>>,
}

impl Default for Lease {
    fn default() -> Self {
        Lease {
            valid_until: watch::channel(None).0,
        }
    }
}

impl Lease {
    pub fn is_valid(&self) -> bool {
        self.valid_until
            .borrow()
            .is_some_and(|until| Instant::now() < until)
    }

    /// Returns once the lease is valid: events wait (unacked, within the prefetch) while
    /// this router cannot vouch for its configuration.
    pub async fn wait_valid(&self) {
        let mut renewed = self.valid_until.subscribe();
        while !self.is_valid() {
            if renewed.changed().await.is_err() {
                return;
            }
        }
    }
}

/// Renews `lease` until `shutdown`, then gives it up so that admin changes stop waiting for
/// this router. `ready` follows it.
pub async fn keep(
    store: HookStore,
    cache: HookCache,
    id: String,
    duration: Duration,
    lease: Lease,
    ready: Flag,
    shutdown: CancellationToken,
) {
    let mut tick = tokio::time::interval(REFRESH_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut installed = cache.subscribe();
    // Redis starts the expiry when it runs the renewal, after `asked`; a twentieth of the
    // lease covers clocks running at different rates.
    let trusted = duration - duration / 20;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tick.tick() => {}
            _ = installed.changed() => {}
        }
        let snapshot = cache.snapshot();
        if snapshot.is_loaded() {
            let asked = Instant::now();
            let stated = (!cache.is_regressed()).then_some(snapshot.version);
            match store.renew_lease(&id, stated, duration).await {
                Ok(true) => {
                    lease.valid_until.send_replace(Some(asked + trusted));
                }
                // The store moved on: the cache reloads, and the next renewal states it.
                Ok(false) => {}
                Err(err) => tracing::debug!(error = %err, "lease not renewed"),
            }
        }
        ready.set(lease.is_valid());
    }
    lease.valid_until.send_replace(None);
    if let Err(err) = store.drop_lease(&id).await {
        tracing::debug!(error = %err, "lease not given up; it expires");
    }
}

/// Waits until every live router has loaded `version` or, at the latest, until a lease has
/// had time to run out: a router still behind then has stopped routing. `false` if it had
/// to wait that long.
pub async fn await_applied(store: &HookStore, version: u64, lease: Duration) -> bool {
    let deadline = Instant::now() + lease + Duration::from_millis(100);
    loop {
        match store.routers_behind(version).await {
            Ok(behind) if behind.is_empty() => return true,
            Ok(_) | Err(_) if Instant::now() >= deadline => return false,
            _ => {}
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
