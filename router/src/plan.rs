//! The router's decision, pure: which deliveries one event becomes.

use hookbus_contracts::snapshot::HookSnapshot;
use hookbus_contracts::{Delivery, Event};

/// One delivery per hook that wants the event (Logto's rule, see `Hook::wants`); none when
/// no hook does, and the event is then acked and dropped.
pub fn deliveries(event: &Event, hooks: &HookSnapshot) -> Vec<Delivery> {
    hooks
        .subscribers(event.name)
        .iter()
        .map(|hook| Delivery::new(hook.id.clone(), event.clone()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use hookbus_contracts::hook::HookInput;
    use hookbus_contracts::target::TargetPolicy;
    use hookbus_contracts::EventName;

    fn hook(events: &[&str], enabled: bool) -> hookbus_contracts::Hook {
        let input: HookInput = serde_json::from_value(serde_json::json!({
            "events": events, "config": {"url": "https://example.com"}, "enabled": enabled
        }))
        .unwrap();
        input.validate(&TargetPolicy::default()).unwrap()
    }

    #[test]
    fn fans_out_to_enabled_subscribers_only() {
        let hooks = vec![
            hook(&["PostSignIn"], true),
            hook(&["PostSignIn", "User.Created"], true),
            hook(&["PostSignIn"], true),
            hook(&["PostSignIn"], false),
            hook(&["User.Created"], true),
        ];
        let snapshot = HookSnapshot::new(1, hooks.clone());
        let sign_in = Event::new(EventName::parse("PostSignIn").unwrap(), Default::default());
        let out = deliveries(&sign_in, &snapshot);
        assert_eq!(out.len(), 3);
        assert!(out.iter().all(|d| d.event == sign_in && d.attempts == 0));
        assert!(
            !out.iter().any(|d| d.hook_id == hooks[3].id),
            "disabled hook got a delivery"
        );
        let unwanted = Event::new(
            EventName::parse("Role.Deleted").unwrap(),
            Default::default(),
        );
        assert!(deliveries(&unwanted, &snapshot).is_empty());
    }
}
