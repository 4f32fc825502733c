//! Making hooks active before publishing to them, so that their queues exist and their
//! deliverers consume them (the rules are the contracts' `activity`).
//!
//! A hook this router activated less than a refresh ago is published to at once; the others
//! are activated in one Redis call first, and the queues Redis cannot vouch for are declared
//! (deliverers wait for that declare before they consume them, see the runtime's `activity`).
//! The deadline returned is when a confirm stops proving anything: the event is routed
//! again if its confirms come later.

use std::collections::HashSet;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use hookbus_contracts::activity::Touches;
use hookbus_contracts::HookId;
use hookbus_runtime::activity::{Activated, HookActivity};
use hookbus_runtime::store::StoreError;
use tokio::sync::watch;

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
    /// Until [`Activator::declared`], this router's other events for `declare` wait.
    _declaring: Option<Declaring>,
}

impl Activation {
    /// Activity is not tracked: nothing to declare, no deadline.
    pub const NONE: Activation = Activation {
        declare: Vec::new(),
        deadline: None,
        _declaring: None,
    };

    /// Whether confirms that came now are still proof.
    pub fn check(&self) -> Result<(), ActivationError> {
        match self.deadline {
            Some(deadline) if Instant::now() > deadline => Err(ActivationError::Late),
            _ => Ok(()),
        }
    }
}

/// Hooks one activation is declaring the queues of, taken off the router's set when dropped.
struct Declaring {
    set: watch::Sender<HashSet<HookId>>,
    hooks: Vec<HookId>,
}

impl Drop for Declaring {
    fn drop(&mut self) {
        self.set.send_modify(|set| {
            for hook in &self.hooks {
                set.remove(hook);
            }
        });
    }
}

pub struct Activator {
    store: HookActivity,
    touches: Mutex<Touches>,
    /// Activations write Redis one at a time: of two activations of one hook, the second
    /// finds the first's (and waits for its declare) instead of racing it.
    writing: tokio::sync::Mutex<()>,
    /// Hooks whose queue one of this router's activations is declaring: its other events
    /// for them wait rather than publish into a queue RabbitMQ is still creating (a publish
    /// there is returned, and the event routed again: a duplicate for every other hook).
    declaring: watch::Sender<HashSet<HookId>>,
}

impl Activator {
    pub fn new(store: HookActivity) -> Activator {
        let touches = Mutex::new(Touches::new(store.idle()));
        Activator {
            store,
            touches,
            writing: tokio::sync::Mutex::new(()),
            declaring: watch::Sender::new(HashSet::new()),
        }
    }

    pub fn store(&self) -> &HookActivity {
        &self.store
    }

    /// Activates those of `hooks` not activated within the refresh, once no other
    /// activation of this router is declaring one of their queues. An activation that is
    /// declaring never waits here, so two cannot wait for each other.
    pub async fn activate(&self, hooks: &[&HookId]) -> Result<Activation, ActivationError> {
        let declaring_any = |set: &HashSet<HookId>| hooks.iter().any(|h| set.contains(*h));
        loop {
            // The sender lives as long as `self`: waiting cannot fail.
            let _ = self
                .declaring
                .subscribe()
                .wait_for(|set| !declaring_any(set))
                .await;
            // Hooks are marked declaring before they count as activated (below), so one
            // found activated here is also found declaring, until its declare is done.
            if self.touches().due(hooks, Instant::now()).is_empty() {
                if declaring_any(&self.declaring.borrow()) {
                    continue;
                }
                return Ok(self.activated(hooks, Vec::new(), None));
            }
            let _writing = self.writing.lock().await;
            if declaring_any(&self.declaring.borrow()) {
                continue;
            }
            // Again: the activation this one waited for may have written them.
            let sent = Instant::now();
            let due = self.touches().due(hooks, sent);
            if due.is_empty() {
                return Ok(self.activated(hooks, Vec::new(), None));
            }
            let declare = match self.store.activate(&due).await? {
                Activated::Active(declare) => declare,
                Activated::Retiring(hook) => return Err(ActivationError::Retiring(hook)),
            };
            let declaring = (!declare.is_empty()).then(|| {
                self.declaring
                    .send_modify(|set| set.extend(declare.iter().cloned()));
                Declaring {
                    set: self.declaring.clone(),
                    hooks: declare.clone(),
                }
            });
            self.touches().record(&due, sent);
            return Ok(self.activated(hooks, declare, declaring));
        }
    }

    fn activated(
        &self,
        hooks: &[&HookId],
        declare: Vec<HookId>,
        declaring: Option<Declaring>,
    ) -> Activation {
        Activation {
            declare,
            deadline: self.touches().deadline(hooks),
            _declaring: declaring,
        }
    }

    /// The queues `activation` named are declared (or failed to be): deliverers may consume
    /// them now, and this router's other events for them go on.
    pub async fn declared(&self, activation: &mut Activation) -> Result<(), ActivationError> {
        let written = self.store.declared(&activation.declare).await;
        activation._declaring = None;
        Ok(written?)
    }

    /// Activates `hooks`, waiting out a sweep that is deleting one of their queues (it acts
    /// within `RETIRE_DEADLINE`): a refusal is nobody's failure, and an event requeued for
    /// each would soon be parked.
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
