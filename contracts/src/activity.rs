//! Cost that follows activity: a hook's queue exists, and deliverers consume it, only while
//! the hook has something to deliver.
//!
//! A hook is *active until* a time kept in Redis (`{p}:active-hooks`): a router that routes
//! to it pushes that time to now + the idle period before it publishes, a deliverer while it
//! delivers and before it schedules a retry (to when the retry comes back, + the idle
//! period). Deliverers consume the active hooks they own; the routers' sweep deletes the
//! queue of a hook idle past that time, if it is empty and unconsumed. The queue is
//! declared again by the router that next activates the hook.
//!
//! Deleting is what could lose an event: a delivery published just before the queue goes
//! would go with it. Two rules close that race (ARCHITECTURE.md, "Cost follows activity"):
//! a router publishes to a hook only within [`Idle::refresh`] of activating it and treats a
//! confirm that comes after [`Touches::deadline`] as unsure (it routes the event again);
//! and the sweep marks a queue *retiring* in Redis before it looks at it, which makes an
//! activation wait until the sweep is done. This module holds those rules as pure
//! decisions; the Redis and broker calls are the runtime's and the router's.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::ids::HookId;

/// How long a hook stays active after its last event, delivery or due retry, unless
/// `HOOKBUS_HOOK_IDLE` says otherwise.
pub const DEFAULT_IDLE: Duration = Duration::from_secs(300);

/// A retirement mark older than this was left by a sweep that died: it is ignored.
pub const RETIRE_MARK_LASTS: Duration = Duration::from_secs(30);

/// A sweep deletes a queue only this soon after marking it, so that a mark it still acts
/// on is never one an activation took as stale.
pub const RETIRE_DEADLINE: Duration = Duration::from_secs(10);

/// The idle period, and the timings that follow from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Idle(Duration);

impl Idle {
    /// `None` for a zero period: activity is not tracked, every enabled hook keeps its queue
    /// and its consumers (the behaviour before activity).
    pub fn new(period: Duration) -> Option<Idle> {
        (!period.is_zero()).then_some(Idle(period))
    }

    pub fn period(self) -> Duration {
        self.0
    }

    /// How often a process that keeps using a hook writes its activity again: a quarter of
    /// the period, at most 10 s. Between two writes the hook is active for at least three
    /// quarters of the period, which is what a publish has to be confirmed in.
    pub fn refresh(self) -> Duration {
        (self.0 / 4).min(Duration::from_secs(10))
    }
}

/// What the sweep does with the queue of a hook idle past its time, from the queue's
/// `queue.declare-ok` (ready messages, consumers; a quorum queue counts a cancelled
/// consumer until its unacked messages are settled).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Empty and unconsumed: nothing is lost by deleting it.
    Delete,
    /// Empty, but a deliverer still consumes it (it has not read that the hook is idle
    /// yet, or is finishing a delivery): the hook stays idle and the next sweep looks again.
    Recheck,
    /// Messages wait in it (a retry came back late, a backlog left while deliverers were
    /// down, a disabled hook's backlog): the hook is active again for an idle period, so
    /// that its owners drain it (a disabled hook's backlog waits for it to be enabled).
    Revive,
}

pub fn verdict(messages: u32, consumers: u32) -> Verdict {
    match (messages, consumers) {
        (0, 0) => Verdict::Delete,
        (0, _) => Verdict::Recheck,
        _ => Verdict::Revive,
    }
}

/// When this router last activated each hook: it writes a hook's activity again only once
/// [`Idle::refresh`] has passed, so routing to a busy hook makes no Redis call per event.
#[derive(Debug)]
pub struct Touches {
    idle: Idle,
    at: HashMap<HookId, Instant>,
}

/// Hooks remembered at most: past it, those not touched within the refresh are forgotten
/// (they would be written again anyway).
const TOUCHES_KEPT: usize = 100_000;

impl Touches {
    pub fn new(idle: Idle) -> Touches {
        Touches {
            idle,
            at: HashMap::new(),
        }
    }

    /// Of `hooks`, those whose activity must be written before publishing to them at `now`.
    pub fn due<'a>(&self, hooks: &[&'a HookId], now: Instant) -> Vec<&'a HookId> {
        hooks
            .iter()
            .filter(|h| {
                self.at
                    .get(**h)
                    .is_none_or(|at| now.saturating_duration_since(*at) >= self.idle.refresh())
            })
            .copied()
            .collect()
    }

    /// `hooks` were activated by a call sent at `sent` (before the call, so that the
    /// router's clock never credits it with more than Redis did).
    pub fn record(&mut self, hooks: &[&HookId], sent: Instant) {
        if self.at.len() >= TOUCHES_KEPT {
            let refresh = self.idle.refresh();
            self.at
                .retain(|_, at| sent.saturating_duration_since(*at) < refresh);
        }
        for hook in hooks {
            self.at.insert((*hook).clone(), sent);
        }
    }

    /// The time by which deliveries published to `hooks` must be confirmed: past it, one of
    /// those hooks may be idle long enough for a sweep to have deleted its queue, and a
    /// confirm no longer proves the delivery is in it. `None` if one was never activated.
    pub fn deadline(&self, hooks: &[&HookId]) -> Option<Instant> {
        let margin = self.idle.period().saturating_sub(self.idle.refresh());
        hooks
            .iter()
            .map(|h| self.at.get(*h).map(|at| *at + margin))
            .try_fold(None, |earliest: Option<Instant>, at| {
                let at = at?;
                Some(Some(earliest.map_or(at, |e| e.min(at))))
            })
            .flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hook(s: &str) -> HookId {
        HookId::parse(s).expect("a hook id")
    }

    #[test]
    fn zero_turns_activity_off_and_refresh_is_a_quarter_at_most_ten_seconds() {
        assert_eq!(Idle::new(Duration::ZERO), None);
        let five_min = Idle::new(DEFAULT_IDLE).expect("on");
        assert_eq!(five_min.refresh(), Duration::from_secs(10));
        let second = Idle::new(Duration::from_secs(1)).expect("on");
        assert_eq!(second.refresh(), Duration::from_millis(250));
    }

    #[test]
    fn only_an_empty_unconsumed_queue_is_deleted_and_one_with_messages_revives() {
        assert_eq!(verdict(0, 0), Verdict::Delete);
        // Reviving here would keep its consumers, which keep it from being deleted, forever.
        assert_eq!(verdict(0, 2), Verdict::Recheck);
        assert_eq!(verdict(3, 0), Verdict::Revive);
        assert_eq!(verdict(3, 2), Verdict::Revive);
    }

    #[test]
    fn a_hook_is_written_again_once_the_refresh_has_passed() {
        let idle = Idle::new(Duration::from_secs(40)).expect("on");
        let (a, b) = (hook("a"), hook("b"));
        let mut touches = Touches::new(idle);
        let t0 = Instant::now();
        assert_eq!(touches.due(&[&a, &b], t0), vec![&a, &b]);
        touches.record(&[&a], t0);
        assert_eq!(touches.due(&[&a, &b], t0), vec![&b]);
        assert_eq!(
            touches.due(&[&a], t0 + Duration::from_secs(9)),
            Vec::<&HookId>::new()
        );
        assert_eq!(touches.due(&[&a], t0 + Duration::from_secs(10)), vec![&a]);
    }

    #[test]
    fn the_deadline_is_the_earliest_activation_plus_the_period_less_the_refresh() {
        let idle = Idle::new(Duration::from_secs(40)).expect("on");
        let (a, b) = (hook("a"), hook("b"));
        let mut touches = Touches::new(idle);
        let t0 = Instant::now();
        assert_eq!(touches.deadline(&[&a]), None);
        touches.record(&[&a], t0);
        touches.record(&[&b], t0 + Duration::from_secs(5));
        assert_eq!(
            touches.deadline(&[&a, &b]),
            Some(t0 + Duration::from_secs(30))
        );
        assert_eq!(touches.deadline(&[&b]), Some(t0 + Duration::from_secs(35)));
        let c = hook("c");
        assert_eq!(touches.deadline(&[&a, &c]), None);
    }
}
