//! Which deliverers consume a hook's queue: its owners, chosen by rendezvous hashing over
//! the live deliverers, so that every deliverer reaches the same answer from the same list
//! without talking to the others, adding a deliverer moves to it only its share of the
//! hooks, and a deliverer leaving hands each of its hooks to the next in that hook's order.
//!
//! An idle hook has [`DEFAULT_OWNERS`] owners (two: one can die while the other goes on);
//! a busy one (a backlog reported by a deliverer) has every live deliverer, so one hook can
//! still use them all. Pure: the registry of live deliverers lives in the runtime crate.

use std::collections::BTreeSet;

use xxhash_rust::xxh3::Xxh3;

use crate::ids::HookId;

/// Owners of an idle hook unless `HOOKBUS_HOOK_OWNERS` says otherwise.
pub const DEFAULT_OWNERS: usize = 2;

/// The live deliverers as one of them last read them, and the hooks reported busy.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Members {
    /// Instance ids of the deliverers whose lease runs.
    pub live: Vec<String>,
    /// Hooks whose queue holds a backlog: every deliverer consumes them.
    pub busy: BTreeSet<HookId>,
}

/// Rendezvous weight of `deliverer` for `hook`: the `owners` heaviest own it.
fn weight(hook: &HookId, deliverer: &str) -> u64 {
    let mut hasher = Xxh3::new();
    hasher.update(hook.as_str().as_bytes());
    hasher.update(&[0]);
    hasher.update(deliverer.as_bytes());
    hasher.digest()
}

impl Members {
    /// Whether deliverer `me` consumes `hook`'s queue, `owners` deliverers owning an idle
    /// hook (0: every deliverer owns every hook). A deliverer that does not find itself in
    /// the list (its first lease not read back yet) consumes everything: more consumers
    /// than needed for a moment, never a hook without one.
    pub fn owns(&self, me: &str, hook: &HookId, owners: usize) -> bool {
        if owners == 0 || self.live.len() <= owners || !self.live.iter().any(|d| d == me) {
            return true;
        }
        if self.busy.contains(hook) {
            return true;
        }
        let mine = weight(hook, me);
        let heavier = self
            .live
            .iter()
            .filter(|d| d.as_str() != me && weight(hook, d) > mine)
            .count();
        heavier < owners
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn members(n: usize) -> Members {
        Members {
            live: (0..n).map(|i| format!("deliverer-{i}")).collect(),
            busy: BTreeSet::new(),
        }
    }

    fn owners_of(m: &Members, hook: &HookId, k: usize) -> Vec<String> {
        m.live
            .iter()
            .filter(|d| m.owns(d, hook, k))
            .cloned()
            .collect()
    }

    #[test]
    fn each_idle_hook_has_exactly_its_owners_and_the_hooks_spread_evenly() {
        let m = members(4);
        let hooks: Vec<HookId> = (0..4000).map(|_| HookId::generate()).collect();
        let mut per_deliverer = [0usize; 4];
        for hook in &hooks {
            let owners = owners_of(&m, hook, 2);
            assert_eq!(owners.len(), 2, "{hook}: {owners:?}");
            for (i, d) in m.live.iter().enumerate() {
                per_deliverer[i] += usize::from(owners.contains(d));
            }
        }
        // 8,000 ownerships over 4 deliverers: 2,000 each, within ±20 %.
        for n in per_deliverer {
            assert!((1600..=2400).contains(&n), "{per_deliverer:?}");
        }
    }

    #[test]
    fn a_deliverer_leaving_moves_only_its_own_hooks() {
        let before = members(4);
        let mut after = before.clone();
        let gone = after.live.remove(1);
        for _ in 0..500 {
            let hook = HookId::generate();
            let (old, new) = (owners_of(&before, &hook, 2), owners_of(&after, &hook, 2));
            assert_eq!(new.len(), 2);
            if !old.contains(&gone) {
                assert_eq!(old, new, "a hook {gone} did not own moved");
            } else {
                // Its other owner keeps it; one new owner takes the place of the one gone.
                assert!(old.iter().filter(|d| **d != gone).all(|d| new.contains(d)));
            }
        }
    }

    #[test]
    fn busy_hooks_few_deliverers_and_strangers_consume_everything() {
        let hook = HookId::generate();
        let mut m = members(5);
        m.busy.insert(hook.clone());
        assert_eq!(
            owners_of(&m, &hook, 2).len(),
            5,
            "a busy hook uses every deliverer"
        );
        assert_eq!(owners_of(&members(2), &hook, 2).len(), 2);
        assert_eq!(owners_of(&members(5), &hook, 0).len(), 5, "0: no sharing");
        assert!(members(5).owns("not-registered-yet", &hook, 2));
    }
}
