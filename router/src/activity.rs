//! Making hooks active before publishing to them, so that their queues exist and their
//! deliverers consume them (the rules are the contracts' `activity`).
//!
//! A hook this router activated less than a refresh ago is published to at once; the others
//! are activated in one Redis call first. A hook with no activity recorded is *fresh*: Redis
//! marks it as being declared (other activations wait), this router declares its queue, and
//! only then is it written active. Deliverers consume what is active, so none consumes a
//! queue still being created: RabbitMQ 3.10 answers a second declare of a quorum queue
//! before the queue can be consumed, and a consume then crashes the consumer's channel,
//! which closes its whole connection. The deadline returned is when a confirm stops proving
//! anything: the event is routed again if its confirms come later.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use hookbus_contracts::activity::{Touches, RETIRE_MARK_LASTS};
use hookbus_contracts::topology::Topology;
use hookbus_contracts::HookId;
use hookbus_runtime::activity::{Activated, HookActivity};
use hookbus_runtime::declare::Declare;
use hookbus_runtime::store::StoreError;
use lapin::Channel;

/// How often an activation refused for a queue being declared or deleted is tried again.
const CHANGING_POLL: Duration = Duration::from_millis(100);

#[derive(Debug, thiserror::Error)]
pub enum ActivationError {
    #[error("hook activity not written: {0}")]
    Store(#[from] StoreError),
    #[error("the queue of hook {0} is being declared or deleted as idle")]
    Changing(HookId),
    #[error("a fresh hook's queue not declared: {0}")]
    Declare(#[from] lapin::Error),
    #[error("deliveries were confirmed after their hooks' activity may have run out")]
    Late,
}

/// An activation written to Redis, but for its fresh hooks' queues.
#[derive(Default)]
pub struct Pending {
    /// The hooks activated.
    due: Vec<HookId>,
    /// Those of them whose queues may not exist.
    fresh: Vec<HookId>,
    /// When the activation was sent; `None` if nothing was due.
    sent: Option<Instant>,
}

/// Until when the confirms of deliveries published after an activation prove anything.
pub struct Activation {
    /// Confirms that come later than this do not prove the deliveries are queued.
    deadline: Option<Instant>,
}

impl Activation {
    /// Activity is not tracked: no deadline.
    pub const NONE: Activation = Activation { deadline: None };

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

    /// Activates those of `hooks` not activated within the refresh, but for the fresh ones,
    /// whose queues [`Activator::declare`] declares before they are written active. A sweep
    /// deleting, or another activation declaring, one of their queues is waited out, for
    /// longer than a mark counts (`RETIRE_MARK_LASTS`), so that the wait ends in progress
    /// even when the mark's owner died or is declaring a thousand queues: a refusal is
    /// nobody's failure, and an event requeued for each would use up the tries after which
    /// it is parked.
    pub async fn activate(&self, hooks: &[&HookId]) -> Result<Pending, ActivationError> {
        let waited_out = Instant::now() + RETIRE_MARK_LASTS + CHANGING_POLL;
        loop {
            let sent = Instant::now();
            let due: Vec<HookId> = self
                .touches()
                .due(hooks, sent)
                .into_iter()
                .cloned()
                .collect();
            if due.is_empty() {
                return Ok(Pending::default());
            }
            let refs: Vec<&HookId> = due.iter().collect();
            match self.store.activate(&refs).await? {
                Activated::Active(fresh) => {
                    return Ok(Pending {
                        due,
                        fresh,
                        sent: Some(sent),
                    })
                }
                Activated::Changing(_) if Instant::now() < waited_out => {
                    tokio::time::sleep(CHANGING_POLL).await;
                }
                Activated::Changing(hook) => return Err(ActivationError::Changing(hook)),
            }
        }
    }

    /// Declares (on `ch`) the queues of the fresh hooks `pending` holds and writes them
    /// active; then `hooks` may be published to until the deadline returned.
    pub async fn declare(
        &self,
        pending: Pending,
        ch: &Channel,
        topology: &Topology,
        hooks: &[&HookId],
    ) -> Result<Activation, ActivationError> {
        if let Some(sent) = pending.sent {
            let declared: lapin::Result<()> = async {
                for hook in &pending.fresh {
                    topology.declare_hook(ch, hook).await?;
                }
                Ok(())
            }
            .await;
            self.store
                .end_declare(&pending.fresh, declared.is_ok())
                .await?;
            declared?;
            let due: Vec<&HookId> = pending.due.iter().collect();
            self.touches().record(&due, sent);
        }
        let deadline = self.touches().deadline(hooks);
        Ok(Activation { deadline })
    }

    fn touches(&self) -> std::sync::MutexGuard<'_, Touches> {
        self.touches.lock().expect("touches lock")
    }
}
