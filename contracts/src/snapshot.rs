//! The hook configuration as every process routes by it: an immutable, indexed
//! [`HookSnapshot`], and the pure rule ([`StoreCheck`]) that decides whether what the store
//! now says replaces it.
//!
//! The Redis side (reading the store, keeping a cache current) lives in the runtime crate;
//! what is here has no I/O, so routing decisions and regression rules are unit-tested.

use std::collections::HashMap;
use std::sync::Arc;

use crate::catalogue::EventName;
use crate::hook::Hook;
use crate::ids::HookId;

/// What the store says of itself: its identity and its version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreState {
    pub epoch: Option<String>,
    /// An epoch an operator accepted after a regression.
    pub accepted: Option<String>,
    pub version: u64,
}

/// What a process does with the store's state, given what it has loaded (pure).
///
/// A store restarted without persistence, failed over to a lagging replica or restored
/// from a backup comes back empty or older: its version goes backwards, or its epoch is
/// gone or another. Taking that as a change would drop events for every hook it lost, and
/// the version climbing back would later hide real changes; so a process keeps routing on
/// its last good snapshot and reports the regression until the snapshot is written back or
/// an operator accepts the store as it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreCheck {
    /// Same epoch, same version: nothing to do.
    Current,
    /// Same epoch, a newer version: load it.
    Reload,
    /// Load it whatever the version: the first load, the first epoch written, or one an
    /// operator accepted.
    Adopt,
    /// Keep the last good snapshot.
    Regressed,
}

impl StoreCheck {
    /// `known` is the epoch and version of the installed snapshot; `None` before the first.
    pub fn of(known: Option<(&Option<String>, u64)>, seen: &StoreState) -> StoreCheck {
        let Some((epoch, version)) = known else {
            return StoreCheck::Adopt;
        };
        if seen.epoch != *epoch {
            let accepted = seen.epoch.is_some() && seen.accepted == seen.epoch;
            let first = epoch.is_none() && seen.version >= version;
            return if accepted || first {
                StoreCheck::Adopt
            } else {
                StoreCheck::Regressed
            };
        }
        match seen.version.cmp(&version) {
            std::cmp::Ordering::Less => StoreCheck::Regressed,
            std::cmp::Ordering::Equal => StoreCheck::Current,
            std::cmp::Ordering::Greater => StoreCheck::Reload,
        }
    }
}

/// One consistent view of every hook, indexed for routing.
#[derive(Default)]
pub struct HookSnapshot {
    pub version: u64,
    hooks: HashMap<HookId, Arc<Hook>>,
    by_event: HashMap<EventName, Vec<Arc<Hook>>>,
    /// False only for the empty placeholder a cache starts with.
    loaded: bool,
}

impl HookSnapshot {
    pub fn new(version: u64, hooks: Vec<Hook>) -> HookSnapshot {
        let hooks = hooks
            .into_iter()
            .map(|h| (h.id.clone(), Arc::new(h)))
            .collect();
        HookSnapshot::indexed(version, hooks)
    }

    /// This snapshot with `changes` applied, as `version`: each changed hook as it is now
    /// (`None`: deleted). The hooks that did not change are shared, not read again, and only
    /// the index entries of the changed ones are touched.
    pub fn with_changes(
        &self,
        version: u64,
        changes: impl IntoIterator<Item = (HookId, Option<Hook>)>,
    ) -> HookSnapshot {
        let mut hooks = self.hooks.clone();
        let mut by_event = self.by_event.clone();
        for (id, hook) in changes {
            if let Some(old) = hooks.remove(&id) {
                for event in EventName::all().filter(|e| old.wants(*e)) {
                    if let Some(subscribers) = by_event.get_mut(&event) {
                        subscribers.retain(|h| h.id != id);
                    }
                }
            }
            if let Some(hook) = hook {
                let hook = Arc::new(hook);
                for event in EventName::all().filter(|e| hook.wants(*e)) {
                    by_event.entry(event).or_default().push(hook.clone());
                }
                hooks.insert(id, hook);
            }
        }
        HookSnapshot {
            version,
            hooks,
            by_event,
            loaded: true,
        }
    }

    fn indexed(version: u64, hooks: HashMap<HookId, Arc<Hook>>) -> HookSnapshot {
        let mut by_event: HashMap<EventName, Vec<Arc<Hook>>> = HashMap::new();
        for hook in hooks.values() {
            for event in EventName::all().filter(|e| hook.wants(*e)) {
                by_event.entry(event).or_default().push(hook.clone());
            }
        }
        HookSnapshot {
            version,
            hooks,
            by_event,
            loaded: true,
        }
    }

    /// The hooks that want `event` (enabled, subscribed).
    pub fn subscribers(&self, event: EventName) -> &[Arc<Hook>] {
        self.by_event.get(&event).map(Vec::as_slice).unwrap_or(&[])
    }

    pub fn get(&self, id: &HookId) -> Option<&Arc<Hook>> {
        self.hooks.get(id)
    }

    pub fn hooks(&self) -> impl Iterator<Item = &Arc<Hook>> {
        self.hooks.values()
    }

    /// False only for the empty placeholder a cache starts with.
    pub fn is_loaded(&self) -> bool {
        self.loaded
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hook::HookInput;
    use crate::target::TargetPolicy;

    fn hook(events: &[&str], enabled: bool) -> Hook {
        let input: HookInput = serde_json::from_value(serde_json::json!({
            "events": events, "config": {"url": "https://example.com/h"}, "enabled": enabled
        }))
        .unwrap();
        input.validate(&TargetPolicy::default()).unwrap()
    }

    #[test]
    fn a_store_that_comes_back_older_or_another_is_a_regression() {
        let state = |epoch: Option<&str>, accepted: Option<&str>, version| StoreState {
            epoch: epoch.map(Into::into),
            accepted: accepted.map(Into::into),
            version,
        };
        let e1 = Some("e1".to_owned());
        let none: Option<String> = None;
        use StoreCheck::*;
        assert_eq!(StoreCheck::of(None, &state(None, None, 0)), Adopt);
        assert_eq!(
            StoreCheck::of(Some((&e1, 5)), &state(Some("e1"), None, 5)),
            Current
        );
        assert_eq!(
            StoreCheck::of(Some((&e1, 5)), &state(Some("e1"), None, 6)),
            Reload
        );
        // Restarted empty, restored from an older backup, or replaced.
        assert_eq!(
            StoreCheck::of(Some((&e1, 5)), &state(None, None, 0)),
            Regressed
        );
        assert_eq!(
            StoreCheck::of(Some((&e1, 5)), &state(None, None, 1000)),
            Regressed
        );
        assert_eq!(
            StoreCheck::of(Some((&e1, 5)), &state(Some("e1"), None, 4)),
            Regressed
        );
        assert_eq!(
            StoreCheck::of(Some((&e1, 5)), &state(Some("e2"), None, 9)),
            Regressed
        );
        // An operator accepted the store as it is.
        assert_eq!(
            StoreCheck::of(Some((&e1, 5)), &state(Some("e2"), Some("e2"), 9)),
            Adopt
        );
        // A store from before epochs gets its first one, or loses its hooks.
        assert_eq!(
            StoreCheck::of(Some((&none, 5)), &state(Some("e1"), None, 6)),
            Adopt
        );
        assert_eq!(
            StoreCheck::of(Some((&none, 5)), &state(Some("e1"), None, 1)),
            Regressed
        );
        assert_eq!(
            StoreCheck::of(Some((&none, 5)), &state(None, None, 0)),
            Regressed
        );
    }

    #[test]
    fn snapshot_indexes_enabled_subscribers_by_event() {
        let a = hook(&["PostSignIn"], true);
        let b = hook(&["PostSignIn", "User.Created"], true);
        let off = hook(&["PostSignIn"], false);
        let snap = HookSnapshot::new(1, vec![a.clone(), b.clone(), off.clone()]);
        let sign_in = EventName::parse("PostSignIn").unwrap();
        let mut ids: Vec<_> = snap
            .subscribers(sign_in)
            .iter()
            .map(|h| h.id.clone())
            .collect();
        ids.sort();
        let mut expected = vec![a.id.clone(), b.id.clone()];
        expected.sort();
        assert_eq!(ids, expected);
        assert!(snap
            .subscribers(EventName::parse("Role.Created").unwrap())
            .is_empty());
        assert!(
            snap.get(&off.id).is_some(),
            "disabled hooks are known, just not routed to"
        );
    }

    mod properties {
        use super::*;
        use crate::hook::{HookConfig, Minted};
        use crate::ids::SigningKey;
        use proptest::prelude::*;

        fn events() -> Vec<EventName> {
            EventName::all().collect()
        }

        /// A hook with any subset of events, the legacy single event or none, enabled or not.
        fn hook() -> impl Strategy<Value = Hook> {
            let all = events();
            (
                prop::sample::subsequence(all.clone(), 0..6),
                prop::option::of(prop::sample::select(all)),
                any::<bool>(),
            )
                .prop_map(|(events, event, enabled)| {
                    let input = HookInput {
                        name: None,
                        event,
                        events: Some(events),
                        config: HookConfig {
                            url: "https://example.com/h".into(),
                            headers: Default::default(),
                            retries: None,
                        },
                        enabled: Some(enabled),
                    };
                    let minted = Minted {
                        id: HookId::generate(),
                        signing_key: SigningKey::generate(),
                        created_at: 0,
                    };
                    // Neither events nor event: not a valid hook; give it the legacy field.
                    input
                        .clone()
                        .into_hook(&TargetPolicy::default(), minted.clone())
                        .unwrap_or_else(|_| {
                            HookInput {
                                event: Some(EventName::all().next().unwrap()),
                                ..input
                            }
                            .into_hook(&TargetPolicy::default(), minted)
                            .unwrap()
                        })
                })
        }

        proptest! {
            /// The index answers exactly Logto's rule: an event goes to every hook that
            /// wants it, once, and to no other.
            #[test]
            fn subscribers_are_exactly_the_hooks_that_want_the_event(
                hooks in prop::collection::vec(hook(), 0..12),
                event in prop::sample::select(events()),
            ) {
                let snapshot = HookSnapshot::new(1, hooks.clone());
                let mut routed: Vec<_> = snapshot.subscribers(event).iter().map(|h| h.id.clone()).collect();
                routed.sort();
                let mut wanted: Vec<_> = hooks.iter().filter(|h| h.wants(event)).map(|h| h.id.clone()).collect();
                wanted.sort();
                prop_assert_eq!(routed, wanted);
            }

            /// A snapshot brought up to date change by change routes exactly as one loaded
            /// whole from the store after those changes.
            #[test]
            fn changes_applied_route_as_the_store_loaded_whole(
                before in prop::collection::vec(hook(), 0..8),
                added in prop::collection::vec(hook(), 0..4),
                removed in prop::collection::vec(any::<prop::sample::Index>(), 0..4),
                edited in prop::collection::vec((any::<prop::sample::Index>(), hook()), 0..4),
                event in prop::sample::select(events()),
            ) {
                let pick = |i: &prop::sample::Index| i.get(&before).id.clone();
                let (gone, edited): (Vec<HookId>, Vec<Hook>) = if before.is_empty() {
                    (Vec::new(), Vec::new())
                } else {
                    let gone: Vec<HookId> = removed.iter().map(pick).collect();
                    // Another subscription and state under the id of a hook that stays.
                    let edited = edited
                        .into_iter()
                        .map(|(i, h)| Hook { id: pick(&i), ..h })
                        .filter(|h| !gone.contains(&h.id))
                        .collect();
                    (gone, edited)
                };
                let added: Vec<Hook> = added.into_iter().chain(edited).collect();
                let after: Vec<Hook> = before
                    .iter()
                    .filter(|h| !gone.contains(&h.id) && !added.iter().any(|a| a.id == h.id))
                    .chain(&added)
                    .cloned()
                    .collect();
                let changes = gone
                    .iter()
                    .map(|id| (id.clone(), None))
                    .chain(added.iter().map(|h| (h.id.clone(), Some(h.clone()))));
                let applied = HookSnapshot::new(1, before).with_changes(2, changes);
                let loaded = HookSnapshot::new(2, after);
                let ids = |s: &HookSnapshot| {
                    let mut ids: Vec<_> = s.subscribers(event).iter().map(|h| h.id.clone()).collect();
                    ids.sort();
                    ids
                };
                prop_assert_eq!(ids(&applied), ids(&loaded));
                let mut all: Vec<_> = applied.hooks().map(|h| h.id.clone()).collect();
                all.sort();
                let mut expected: Vec<_> = loaded.hooks().map(|h| h.id.clone()).collect();
                expected.sort();
                prop_assert_eq!(all, expected);
                prop_assert_eq!(applied.version, 2);
            }
        }
    }
}
