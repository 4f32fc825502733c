//! Making hooks active before publishing to them, so that their queues exist and their
//! deliverers consume them (the rules are the contracts' `activity`).
//!
//! A hook this router activated less than a refresh ago is published to at once; the others
//! are activated in one Redis call first, and the queues Redis cannot vouch for are declared.
//! The deadline returned is when a confirm stops proving anything: the event is routed
//! again if its confirms come later.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use hookbus_contracts::activity::Touches;
use hookbus_contracts::HookId;
use hookbus_runtime::activity::{Activated, HookActivity};
use hookbus_runtime::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum ActivationError {
    #[error("hook activity not written: {0}")]
    Store(#[from] StoreError),
    #[error("the queue of hook {0} is being deleted as idle")]
    Retiring(HookId),
    #[error("deliveries were confirmed after their hooks' activity may have run out")]
    Late,
}

/// What publishing to a set of hooks needs first.
pub struct Activation {
    /// Hooks whose queue may not exist: declare before publishing.
    pub declare: Vec<HookId>,
    /// Confirms that come later than this do not prove the deliveries are queued.
    pub deadline: Option<Instant>,
}

impl Activation {
    /// Activity is not tracked: nothing to declare, no deadline.
    pub const NONE: Activation = Activation {
        declare: Vec::new(),
        deadline: None,
    };

    /// Whether confirms that came now are still proof.
    pub fn check(&self) -> Result<(), ActivationError> {
        match self.deadline {
            Some(deadline) if Instant::now() > deadline => Err(ActivationError::Late),
            _ => Ok(()),
        }
    }
}

pub struct Activator {
    store: HookActivity,
    touches: Mutex<Touches>,
}

impl Activator {
    pub fn new(store: HookActivity) -> Activator {
        let touches = Mutex::new(Touches::new(store.idle()));
        Activator { store, touches }
    }

    pub fn store(&self) -> &HookActivity {
        &self.store
    }

    /// Activates those of `hooks` not activated within the refresh.
    pub async fn activate(&self, hooks: &[&HookId]) -> Result<Activation, ActivationError> {
        let sent = Instant::now();
        let due = self.touches().due(hooks, sent);
        let declare = if due.is_empty() {
            Vec::new()
        } else {
            match self.store.activate(&due).await? {
                Activated::Active(declare) => {
                    self.touches().record(&due, sent);
                    declare
                }
                Activated::Retiring(hook) => return Err(ActivationError::Retiring(hook)),
            }
        };
        let deadline = self.touches().deadline(hooks);
        Ok(Activation { declare, deadline })
    }

    /// Activates `hooks`, waiting out a sweep that is deleting one of their queues (it acts
    /// within `RETIRE_DEADLINE`): a refusal is nobody's failure, and an event requeued for
    /// each would use up the tries after which it is parked.
    pub async fn activate_waiting(&self, hooks: &[&HookId]) -> Result<Activation, ActivationError> {
        let mut tries = 0;
        loop {
            match self.activate(hooks).await {
                Err(ActivationError::Retiring(_)) if tries < 100 => {
                    tries += 1;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                other => return other,
            }
        }
    }

    fn touches(&self) -> std::sync::MutexGuard<'_, Touches> {
        self.touches.lock().expect("touches lock")
    }
}
