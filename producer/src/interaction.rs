//! A sign-in flow an auth service reports, and the events it emits.
//!
//! An [`Interaction`] (a registration, a sign-in, a password reset) emits its interaction
//! event (`PostRegister`, `PostSignIn`, `PostResetPassword`) with Logto's interaction
//! payload, then the data events of the seeds' interaction table with the Experience API data
//! payload: registration → `User.Created`; email or phone, MFA, social or SSO linking, and
//! password reset → `User.Data.Updated`. A registration always registers and a forgotten
//! password always resets one, so those actions need not be listed. Several actions that
//! update the user emit one `User.Data.Updated`, as Logto's one submit does.

use hookbus_contracts::payload::{self, Payload};
use hookbus_contracts::{Event, EventName};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::api_call::insert_some;

/// Which flow the user went through (Logto's `interactionEvent`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub enum InteractionEvent {
    Register,
    SignIn,
    ForgotPassword,
}

impl InteractionEvent {
    pub fn as_str(self) -> &'static str {
        match self {
            InteractionEvent::Register => "Register",
            InteractionEvent::SignIn => "SignIn",
            InteractionEvent::ForgotPassword => "ForgotPassword",
        }
    }

    fn hook_event(self) -> EventName {
        let name = match self {
            InteractionEvent::Register => "PostRegister",
            InteractionEvent::SignIn => "PostSignIn",
            InteractionEvent::ForgotPassword => "PostResetPassword",
        };
        EventName::parse(name).expect("interaction events are in the catalogue")
    }

    /// What the flow did by its nature.
    fn own_action(self) -> Option<Action> {
        match self {
            InteractionEvent::Register => Some(Action::Registration),
            InteractionEvent::SignIn => None,
            InteractionEvent::ForgotPassword => Some(Action::PasswordReset),
        }
    }
}

/// A user action of the seeds' interaction table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub enum Action {
    Registration,
    EmailPhoneLinking,
    MfaLinking,
    SocialSsoLinking,
    PasswordReset,
}

impl Action {
    pub const ALL: [Action; 5] = [
        Action::EmailPhoneLinking,
        Action::MfaLinking,
        Action::SocialSsoLinking,
        Action::PasswordReset,
        Action::Registration,
    ];

    /// The interaction table of the seeds.
    pub fn event(self) -> EventName {
        let name = match self {
            Action::Registration => "User.Created",
            Action::EmailPhoneLinking
            | Action::MfaLinking
            | Action::SocialSsoLinking
            | Action::PasswordReset => "User.Data.Updated",
        };
        EventName::parse(name).expect("data events are in the catalogue")
    }
}

/// One completed sign-in flow.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Interaction {
    pub interaction_event: InteractionEvent,
    pub session_id: String,
    pub user_id: String,
    /// The user after the flow; only Logto's user-info fields reach a hook.
    #[schema(value_type = Object)]
    pub user: Payload,
    /// The application the user signed in to (`id`, `type`, `name`, `description`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub application: Option<Payload>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_ip: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub actions: Vec<Action>,
}

impl Interaction {
    /// The interaction event, then the data events, each with a fresh id.
    pub fn events(&self) -> Vec<Event> {
        let data = self
            .data_events()
            .into_iter()
            .map(|name| Event::new(name, self.experience_payload()));
        std::iter::once(Event::new(
            self.interaction_event.hook_event(),
            self.interaction_payload(),
        ))
        .chain(data)
        .collect()
    }

    /// Distinct, in catalogue order: the user is created before it is updated.
    fn data_events(&self) -> Vec<EventName> {
        let own = self.interaction_event.own_action();
        let mut events: Vec<EventName> = own
            .iter()
            .chain(&self.actions)
            .map(|action| action.event())
            .collect();
        events.sort();
        events.dedup();
        events
    }

    fn interaction_payload(&self) -> Payload {
        let mut fields = Payload::new();
        fields.insert(
            "interactionEvent".into(),
            self.interaction_event.as_str().into(),
        );
        fields.insert("sessionId".into(), self.session_id.clone().into());
        insert_some(
            &mut fields,
            "userAgent",
            self.user_agent.clone().map(Value::String),
        );
        fields.insert("userId".into(), self.user_id.clone().into());
        insert_some(
            &mut fields,
            "userIp",
            self.user_ip.clone().map(Value::String),
        );
        fields.insert("user".into(), self.user_info());
        insert_some(&mut fields, "application", self.application_info());
        fields
    }

    /// Logto's Experience API data payload: the flow's metadata, `data` the user.
    fn experience_payload(&self) -> Payload {
        let mut fields = Payload::new();
        fields.insert(
            "interactionEvent".into(),
            self.interaction_event.as_str().into(),
        );
        insert_some(
            &mut fields,
            "userAgent",
            self.user_agent.clone().map(Value::String),
        );
        let application_id = self.application.as_ref().and_then(|a| a.get("id")).cloned();
        insert_some(&mut fields, "applicationId", application_id);
        fields.insert("sessionId".into(), self.session_id.clone().into());
        insert_some(&mut fields, "ip", self.user_ip.clone().map(Value::String));
        insert_some(&mut fields, "application", self.application_info());
        fields.insert("data".into(), self.user_info());
        fields
    }

    fn user_info(&self) -> Value {
        Value::Object(payload::user_info(self.user.clone()))
    }

    fn application_info(&self) -> Option<Value> {
        let application = self.application.clone()?;
        Some(Value::Object(payload::application_info(application)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn interaction(event: &str, actions: Value) -> Interaction {
        serde_json::from_value(json!({
            "interactionEvent": event, "sessionId": "s1", "userId": "u1",
            "user": {"passwordEncrypted": "x", "username": "ann", "id": "u1"},
            "application": {"secret": "s", "name": "Web", "id": "app1", "type": "SPA"},
            "userAgent": "ua", "userIp": "203.0.113.7", "actions": actions
        }))
        .unwrap()
    }

    fn names(i: &Interaction) -> Vec<&'static str> {
        i.events().iter().map(|e| e.name.as_str()).collect()
    }

    #[test]
    fn each_flow_emits_its_interaction_event_and_what_it_did_by_nature() {
        assert_eq!(names(&interaction("SignIn", json!([]))), ["PostSignIn"]);
        assert_eq!(
            names(&interaction("Register", json!([]))),
            ["PostRegister", "User.Created"]
        );
        assert_eq!(
            names(&interaction("ForgotPassword", json!([]))),
            ["PostResetPassword", "User.Data.Updated"]
        );
    }

    #[test]
    fn every_action_maps_as_the_seeds_interaction_table_says() {
        for action in Action::ALL {
            let i = interaction("SignIn", json!([action]));
            let expected = match action {
                Action::Registration => "User.Created",
                _ => "User.Data.Updated",
            };
            assert_eq!(names(&i), ["PostSignIn", expected], "{action:?}");
        }
    }

    #[test]
    fn several_updates_are_one_event_and_creation_comes_first() {
        let i = interaction(
            "Register",
            json!(["mfaLinking", "emailPhoneLinking", "registration"]),
        );
        assert_eq!(
            names(&i),
            ["PostRegister", "User.Created", "User.Data.Updated"]
        );
    }

    #[test]
    fn payloads_keep_only_logto_user_and_application_fields() {
        let events = interaction("Register", json!([])).events();
        let post = &events[0].payload.fields();
        assert_eq!(post["interactionEvent"], "Register");
        assert_eq!(post["userIp"], "203.0.113.7");
        assert_eq!(
            serde_json::to_string(&post["user"]).unwrap(),
            r#"{"id":"u1","username":"ann"}"#
        );
        assert_eq!(
            serde_json::to_string(&post["application"]).unwrap(),
            r#"{"id":"app1","type":"SPA","name":"Web"}"#
        );
        let created = &events[1].payload.fields();
        let keys: Vec<_> = created.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "event",
                "createdAt",
                "interactionEvent",
                "userAgent",
                "applicationId",
                "sessionId",
                "ip",
                "application",
                "data"
            ]
        );
        assert_eq!(created["data"]["id"], "u1");
        assert!(created["data"].get("passwordEncrypted").is_none());
    }

    #[test]
    fn unknown_flows_and_actions_are_refused() {
        let bad = |event: &str, actions: Value| {
            serde_json::from_value::<Interaction>(json!({
                "interactionEvent": event, "sessionId": "s", "userId": "u", "user": {},
                "actions": actions
            }))
        };
        assert!(bad("SignIn", json!(["mfaLinking"])).is_ok());
        assert!(bad("SignUp", json!([])).is_err());
        assert!(bad("SignIn", json!(["teleport"])).is_err());
    }
}
