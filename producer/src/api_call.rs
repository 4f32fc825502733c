//! A Management API call an auth service reports, and the data events it emits.
//!
//! A caller only says "this call succeeded" ([`ApiCall`]); the route table decides the events
//! and this module builds Logto's data-event payload for each, as pure functions: `path` and
//! `matchedRoute` without `/api`, `params`, `status`, `data` the response body. Calls that
//! emit nothing: a method and route not in the table (every `GET`), and a call that did not
//! succeed (a status outside 200..400), as Logto fires data events only for successful calls.

use hookbus_contracts::payload::{self, Payload};
use hookbus_contracts::{Event, EventName};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::route_table::{self, Emit};

/// Logto caps each id list of a membership change at this many ids.
const MEMBERSHIP_DELTA_CAP: usize = 5_000;

/// One successful (or not) Management API call, as the auth service handled it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ApiCall {
    pub method: String,
    /// The route pattern that matched, `/users/:userId` (a leading `/api` is dropped).
    pub matched_route: String,
    /// The request path, `/users/u1` (a leading `/api` is dropped).
    pub path: String,
    #[schema(value_type = Object)]
    pub params: Payload,
    pub status: u16,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub request_body: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub response_body: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    /// Who joined or left, for the membership routes; without it hookbus reads the ids
    /// from the call (`POST`: the request's `userIds`; `DELETE`: the route's `userId`). A
    /// `PUT` replaces the members, and only its handler knows who changed: pass it there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub membership_delta: Option<MembershipDelta>,
}

/// The ids a membership change added and removed; empty lists are left out.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MembershipDelta {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub added_user_ids: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub removed_user_ids: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub added_application_ids: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub removed_application_ids: Vec<String>,
}

impl MembershipDelta {
    fn capped(mut self) -> MembershipDelta {
        for ids in [
            &mut self.added_user_ids,
            &mut self.removed_user_ids,
            &mut self.added_application_ids,
            &mut self.removed_application_ids,
        ] {
            ids.truncate(MEMBERSHIP_DELTA_CAP);
        }
        self
    }
}

impl ApiCall {
    /// Logto fires data events only for calls that succeeded.
    pub fn succeeded(&self) -> bool {
        (200..400).contains(&self.status)
    }

    /// The events this call emits, in the route table's order, each with a fresh id.
    pub fn events(&self) -> Vec<Event> {
        self.emitted()
            .into_iter()
            .map(|(name, fields)| Event::new(name, fields))
            .collect()
    }

    /// A call that changes something (not a `GET`, `HEAD` or `OPTIONS`, which never emit)
    /// whose `method` and `matchedRoute` the route table does not have: it emits nothing,
    /// and the answer says so, so that a typo such as `/users/:id` does not pass silently.
    pub fn unknown_route(&self) -> bool {
        let read = ["GET", "HEAD", "OPTIONS"]
            .iter()
            .any(|m| self.method.eq_ignore_ascii_case(m));
        !read && self.row().is_none()
    }

    fn row(&self) -> Option<&'static route_table::Route> {
        let method = self.method.to_ascii_uppercase();
        route_table::lookup(&method, without_api(&self.matched_route))
    }

    fn emitted(&self) -> Vec<(EventName, Payload)> {
        if !self.succeeded() {
            return Vec::new();
        }
        let Some(row) = self.row() else {
            return Vec::new();
        };
        row.emits()
            .filter_map(|(name, emit)| Some((name, self.payload(emit)?)))
            .collect()
    }

    /// The fields every data event of this call carries.
    fn context(&self) -> Payload {
        let mut fields = Payload::new();
        insert_some(
            &mut fields,
            "userAgent",
            self.user_agent.clone().map(Value::String),
        );
        insert_some(&mut fields, "ip", self.ip.clone().map(Value::String));
        fields.insert("path".into(), without_api(&self.path).into());
        fields.insert("method".into(), self.method.to_ascii_uppercase().into());
        fields.insert("status".into(), self.status.into());
        fields.insert("params".into(), Value::Object(self.params.clone()));
        fields.insert(
            "matchedRoute".into(),
            without_api(&self.matched_route).into(),
        );
        fields
    }

    /// One event's payload, or `None` when this call does not emit it.
    fn payload(&self, emit: Emit) -> Option<Payload> {
        let mut fields = self.context();
        match emit {
            Emit::ResponseBody => {
                if !self.method.eq_ignore_ascii_case("DELETE") {
                    insert_some(&mut fields, "data", self.response_body.clone());
                }
            }
            Emit::DeletedUser => {
                let user = self.response_body.as_ref().and_then(Value::as_object);
                let user = user.map(|u| Value::Object(payload::user_info(u.clone())));
                insert_some(&mut fields, "data", user);
            }
            Emit::MembershipDelta => {
                insert_some(
                    &mut fields,
                    "organizationId",
                    self.params.get("id").cloned(),
                );
                fields.extend(as_object(&self.membership().capped()));
            }
            Emit::CreatedRoleScopes => {
                let scopes = self.request_ids("scopeIds")?;
                insert_some(&mut fields, "roleId", self.created_id());
                let scopes = scopes.into_iter().map(|id| serde_json::json!({"id": id}));
                fields.insert("data".into(), Value::Array(scopes.collect()));
            }
            Emit::CreatedOrganizationRoleScopes => {
                let carried = |key| self.request_ids(key).is_some_and(|ids| !ids.is_empty());
                if !carried("organizationScopeIds") && !carried("resourceScopeIds") {
                    return None;
                }
                insert_some(&mut fields, "organizationRoleId", self.created_id());
            }
        }
        Some(fields)
    }

    /// The caller's delta, or the one the call shows.
    fn membership(&self) -> MembershipDelta {
        if let Some(delta) = &self.membership_delta {
            return delta.clone();
        }
        let mut delta = MembershipDelta::default();
        if self.method.eq_ignore_ascii_case("POST") {
            delta.added_user_ids = deduplicated(self.request_ids("userIds").unwrap_or_default());
        } else if self.method.eq_ignore_ascii_case("DELETE") {
            let user = self.params.get("userId").and_then(Value::as_str);
            delta.removed_user_ids = user.map(str::to_owned).into_iter().collect();
        }
        delta
    }

    /// A list of ids in the request body, if it carried one.
    fn request_ids(&self, key: &str) -> Option<Vec<String>> {
        let ids = self.request_body.as_ref()?.get(key)?.as_array()?;
        Some(
            ids.iter()
                .filter_map(|id| Some(id.as_str()?.to_owned()))
                .collect(),
        )
    }

    /// The id of what a create call made: its response's `id`.
    fn created_id(&self) -> Option<Value> {
        self.response_body.as_ref()?.get("id").cloned()
    }
}

/// Inserts a field only when it has a value: absent keys are left out.
pub(crate) fn insert_some(fields: &mut Payload, key: &str, value: Option<Value>) {
    if let Some(value) = value {
        fields.insert(key.to_owned(), value);
    }
}

fn as_object(delta: &MembershipDelta) -> Payload {
    match serde_json::to_value(delta) {
        Ok(Value::Object(fields)) => fields,
        _ => Payload::new(),
    }
}

fn deduplicated(ids: Vec<String>) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    ids.into_iter()
        .filter(|id| seen.insert(id.clone()))
        .collect()
}

/// Logto's paths and routes are those of its API router, without the `/api` mount point.
fn without_api(path: &str) -> &str {
    match path.strip_prefix("/api") {
        Some(rest) if rest.is_empty() || rest.starts_with('/') => rest,
        _ => path,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn call(v: Value) -> ApiCall {
        serde_json::from_value(v).unwrap()
    }

    fn emitted(v: Value) -> Vec<(String, Value)> {
        call(v)
            .emitted()
            .into_iter()
            .map(|(name, fields)| (name.as_str().to_owned(), Value::Object(fields)))
            .collect()
    }

    #[test]
    fn a_registered_route_carries_the_context_and_the_response_body() {
        let got = emitted(json!({
            "method": "patch", "matchedRoute": "/api/users/:userId", "path": "/api/users/u1",
            "params": {"userId": "u1"}, "status": 200, "ip": "203.0.113.7",
            "requestBody": {"name": "Ann"}, "responseBody": {"id": "u1", "name": "Ann"}
        }));
        assert_eq!(
            got,
            [(
                "User.Data.Updated".to_owned(),
                json!({"ip": "203.0.113.7", "path": "/users/u1", "method": "PATCH", "status": 200,
                       "params": {"userId": "u1"}, "matchedRoute": "/users/:userId",
                       "data": {"id": "u1", "name": "Ann"}})
            )]
        );
    }

    #[test]
    fn failed_calls_gets_and_unknown_routes_emit_nothing() {
        let base = json!({"method": "POST", "matchedRoute": "/users", "path": "/users", "params": {}, "status": 201});
        assert_eq!(emitted(base.clone()).len(), 1);
        for (key, value) in [
            ("status", json!(422)),
            ("status", json!(500)),
            ("status", json!(101)),
            ("method", json!("GET")),
            ("matchedRoute", json!("/applications")),
        ] {
            let mut v = base.clone();
            v[key] = value;
            assert!(emitted(v).is_empty(), "{key}");
        }
    }

    #[test]
    fn deletes_carry_no_data_except_the_deleted_user_with_user_fields_only() {
        let role = emitted(json!({
            "method": "DELETE", "matchedRoute": "/roles/:id", "path": "/roles/r1",
            "params": {"id": "r1"}, "status": 204, "responseBody": {"id": "r1"}
        }));
        assert!(role[0].1.get("data").is_none());
        let user = emitted(json!({
            "method": "DELETE", "matchedRoute": "/users/:userId", "path": "/users/u1",
            "params": {"userId": "u1"}, "status": 204,
            "responseBody": {"passwordEncrypted": "secret", "username": "ann", "id": "u1"}
        }));
        assert_eq!(
            serde_json::to_string(&user[0].1["data"]).unwrap(),
            r#"{"id":"u1","username":"ann"}"#
        );
    }

    #[test]
    fn membership_changes_carry_the_organization_and_the_delta_not_data() {
        let base = |method: &str, route: &str, params: Value, body: Value| {
            json!({"method": method, "matchedRoute": route, "path": "/organizations/o1/users",
                   "params": params, "status": 201, "requestBody": body, "responseBody": body})
        };
        let added = emitted(base(
            "POST",
            "/organizations/:id/users",
            json!({"id": "o1"}),
            json!({"userIds": ["u1", "u2", "u1"]}),
        ));
        assert_eq!(added[0].1["organizationId"], "o1");
        assert_eq!(added[0].1["addedUserIds"], json!(["u1", "u2"]));
        assert!(added[0].1.get("data").is_none());
        assert!(added[0].1.get("removedUserIds").is_none());
        let removed = emitted(base(
            "DELETE",
            "/organizations/:id/users/:userId",
            json!({"id": "o1", "userId": "u3"}),
            Value::Null,
        ));
        assert_eq!(removed[0].1["removedUserIds"], json!(["u3"]));
        let mut put = base(
            "PUT",
            "/organizations/:id/users",
            json!({"id": "o1"}),
            json!({"userIds": ["u1"]}),
        );
        put["membershipDelta"] = json!({"addedUserIds": ["u1"], "removedUserIds": ["u2"]});
        let replaced = emitted(put);
        assert_eq!(replaced[0].1["addedUserIds"], json!(["u1"]));
        assert_eq!(replaced[0].1["removedUserIds"], json!(["u2"]));
    }

    #[test]
    fn membership_id_lists_are_capped() {
        let delta = MembershipDelta {
            added_user_ids: vec!["u".into(); MEMBERSHIP_DELTA_CAP + 3],
            ..Default::default()
        };
        assert_eq!(delta.capped().added_user_ids.len(), MEMBERSHIP_DELTA_CAP);
    }

    #[test]
    fn creating_a_role_with_scopes_emits_the_scopes_event_second() {
        let with = |body: Value| {
            emitted(json!({
                "method": "POST", "matchedRoute": "/roles", "path": "/roles", "params": {},
                "status": 200, "requestBody": body, "responseBody": {"id": "r1", "name": "admin"}
            }))
        };
        let got = with(json!({"name": "admin", "scopeIds": ["s1", "s2"]}));
        let names: Vec<_> = got.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["Role.Created", "Role.Scopes.Updated"]);
        assert_eq!(got[1].1["roleId"], "r1");
        assert_eq!(got[1].1["data"], json!([{"id": "s1"}, {"id": "s2"}]));
        assert_eq!(with(json!({"name": "admin"})).len(), 1);
    }

    #[test]
    fn creating_an_organization_role_with_scopes_emits_the_scopes_event_without_data() {
        let with = |body: Value| {
            emitted(json!({
                "method": "POST", "matchedRoute": "/organization-roles", "path": "/organization-roles",
                "params": {}, "status": 201, "requestBody": body, "responseBody": {"id": "or1"}
            }))
        };
        let got = with(json!({"name": "viewer", "resourceScopeIds": ["rs1"]}));
        assert_eq!(got[1].0, "OrganizationRole.Scopes.Updated");
        assert_eq!(got[1].1["organizationRoleId"], "or1");
        assert!(got[1].1.get("data").is_none());
        assert_eq!(
            with(json!({"name": "viewer", "organizationScopeIds": []})).len(),
            1
        );
    }

    #[test]
    fn api_prefix_is_dropped_only_as_a_whole_segment() {
        assert_eq!(without_api("/api/users"), "/users");
        assert_eq!(without_api("/api"), "");
        assert_eq!(without_api("/apis/x"), "/apis/x");
        assert_eq!(without_api("/users"), "/users");
    }
}
