//! The event catalogue: every event name hookbus accepts, as data in one place.
//!
//! Names come from Logto's webhook catalogue (the 25 seed events plus the newer interaction
//! and exception events). Adding an event is one line in [`CATALOGUE`]. An [`EventName`] can
//! only be obtained from this table, so a value of the type is a known event by construction.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Which payload family an event belongs to; it decides the payload's key order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EventKind {
    /// Sign-in flow events (`PostSignIn`, ...): Logto's interaction payload.
    Interaction,
    /// Entity events (`User.Created`, ...): Management API or Experience API data payload.
    Data,
    /// Security exception events (`Identifier.Lockout`, ...).
    Exception,
}

/// The catalogue. Order is the seed's order, then Logto's newer events.
const CATALOGUE: &[(&str, EventKind)] = &[
    ("PostRegister", EventKind::Interaction),
    ("PostSignIn", EventKind::Interaction),
    ("PostResetPassword", EventKind::Interaction),
    ("PostSignInAdaptiveMfaTriggered", EventKind::Interaction),
    ("User.Created", EventKind::Data),
    ("User.Deleted", EventKind::Data),
    ("User.Data.Updated", EventKind::Data),
    ("User.SuspensionStatus.Updated", EventKind::Data),
    ("Role.Created", EventKind::Data),
    ("Role.Deleted", EventKind::Data),
    ("Role.Data.Updated", EventKind::Data),
    ("Role.Scopes.Updated", EventKind::Data),
    ("Scope.Created", EventKind::Data),
    ("Scope.Deleted", EventKind::Data),
    ("Scope.Data.Updated", EventKind::Data),
    ("Organization.Created", EventKind::Data),
    ("Organization.Deleted", EventKind::Data),
    ("Organization.Data.Updated", EventKind::Data),
    ("Organization.Membership.Updated", EventKind::Data),
    ("OrganizationRole.Created", EventKind::Data),
    ("OrganizationRole.Deleted", EventKind::Data),
    ("OrganizationRole.Data.Updated", EventKind::Data),
    ("OrganizationRole.Scopes.Updated", EventKind::Data),
    ("OrganizationScope.Created", EventKind::Data),
    ("OrganizationScope.Deleted", EventKind::Data),
    ("OrganizationScope.Data.Updated", EventKind::Data),
    ("Identifier.Lockout", EventKind::Exception),
    ("Message.RateLimited", EventKind::Exception),
    ("Grant.LimitExceeded", EventKind::Exception),
];

/// A name that is not in the catalogue.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown event `{0}`: not in the hookbus event catalogue")]
pub struct UnknownEvent(pub String);

/// A known event name. `Copy`, and compares as its index in the catalogue.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EventName(u8);

impl EventName {
    /// Looks a name up in the catalogue (exact, case-sensitive, as Logto's).
    pub fn parse(name: &str) -> Result<Self, UnknownEvent> {
        CATALOGUE
            .iter()
            .position(|(n, _)| *n == name)
            .map(|i| EventName(i as u8))
            .ok_or_else(|| UnknownEvent(name.to_owned()))
    }

    pub fn as_str(self) -> &'static str {
        CATALOGUE[self.0 as usize].0
    }

    pub fn kind(self) -> EventKind {
        CATALOGUE[self.0 as usize].1
    }

    /// Every event of the catalogue, in catalogue order.
    pub fn all() -> impl Iterator<Item = EventName> {
        (0..CATALOGUE.len()).map(|i| EventName(i as u8))
    }
}

impl fmt::Display for EventName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for EventName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// In the OpenAPI document an event name is a string from the catalogue.
impl utoipa::PartialSchema for EventName {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .enum_values(Some(CATALOGUE.iter().map(|(name, _)| *name)))
            .into()
    }
}

impl utoipa::ToSchema for EventName {}

impl Serialize for EventName {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for EventName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        EventName::parse(&name).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalogue_has_the_25_seed_events_and_4_newer_ones() {
        assert_eq!(EventName::all().count(), 29);
        let seeds = include_str!("../../docs/logto/webhook-events.en.txt");
        for name in EventName::all().map(EventName::as_str) {
            let newer = matches!(
                name,
                "PostSignInAdaptiveMfaTriggered"
                    | "Identifier.Lockout"
                    | "Message.RateLimited"
                    | "Grant.LimitExceeded"
            );
            assert!(newer || seeds.contains(name), "{name} is not in the seeds");
        }
    }

    #[test]
    fn names_round_trip_and_unknown_names_are_refused() {
        for e in EventName::all() {
            assert_eq!(EventName::parse(e.as_str()), Ok(e));
            let json = serde_json::to_string(&e).unwrap();
            assert_eq!(serde_json::from_str::<EventName>(&json).unwrap(), e);
        }
        let err = EventName::parse("User.Exploded").unwrap_err();
        assert!(err.to_string().contains("User.Exploded"));
        assert!(EventName::parse("user.created").is_err());
        assert!(serde_json::from_str::<EventName>("\"Nope\"").is_err());
    }
}
