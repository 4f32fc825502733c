//! Every Logto event source, end to end through real RabbitMQ, Redis and HTTP receivers: each
//! row of the Management API route table, each interaction flow and action, the exception
//! events; golden payloads byte for byte; `Idempotency-Key` (replay, concurrency, a failed
//! publish, Redis down); refusals that publish nothing; and the traffic simulator.

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::time::Duration;

use hookbus_contracts::EventName;
use hookbus_producer::route_table::ROUTES;
use hookbus_producer::simulate::{self, SimulateArgs};
use hookbus_tests::pipeline::{self, queue_depth, INGEST_TOKEN};
use hookbus_tests::{Pipeline, Received, Receiver};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

const WAIT: Duration = Duration::from_secs(20);
const UA: &str = "auth-service/2.0";
const IP: &str = "198.51.100.4";

/// An ingest answer.
struct Answer {
    status: u16,
    body: Value,
    replayed: bool,
}

impl Answer {
    /// `(id, event)` of each published event, in the answer's order.
    fn events(&self) -> Vec<(String, String)> {
        let events = self.body["events"].as_array().cloned().unwrap_or_default();
        events
            .iter()
            .map(|e| {
                (
                    e["id"].as_str().unwrap().into(),
                    e["event"].as_str().unwrap().into(),
                )
            })
            .collect()
    }
}

async fn post(
    http: &reqwest::Client,
    addr: SocketAddr,
    path: &str,
    body: &Value,
    key: Option<&str>,
) -> Answer {
    let mut req = http
        .post(format!("http://{addr}{path}"))
        .bearer_auth(INGEST_TOKEN)
        .json(body);
    if let Some(key) = key {
        req = req.header("idempotency-key", key);
    }
    let res = req.send().await.expect("producer answers");
    let replayed = res.headers().contains_key("idempotent-replayed");
    Answer {
        status: res.status().as_u16(),
        body: res.json().await.unwrap_or(Value::Null),
        replayed,
    }
}

/// A receiver subscribed to every event of the catalogue.
async fn subscribe_all(p: &Pipeline) -> Receiver {
    let receiver = Receiver::start().await;
    let events: Vec<&str> = EventName::all().map(EventName::as_str).collect();
    p.create_hook(&events, &receiver.url("all")).await;
    p.wait_hooks(1).await;
    receiver
}

/// Exactly `n` deliveries (none more once `p` has settled every event), by `webhook-id`.
async fn delivered(p: &Pipeline, receiver: &Receiver, n: usize) -> HashMap<String, Received> {
    receiver.wait_for(n, WAIT).await;
    p.wait_settled().await;
    let got = receiver.received();
    assert_eq!(got.len(), n, "deliveries");
    got.into_iter()
        .map(|r| (r.header("webhook-id").to_owned(), r))
        .collect()
}

/// The delivered payload without the fields that vary per run (`createdAt`, `hookId`),
/// serialized in its order, after checking that they are there, ISO and last.
fn stable(r: &Received) -> String {
    let mut body = r.json();
    let fields = body.as_object_mut().unwrap();
    let created_at = fields.shift_remove("createdAt").expect("createdAt");
    assert!(is_iso_millis(created_at.as_str().unwrap()), "{created_at}");
    let last = fields.keys().next_back().expect("hookId");
    assert_eq!(last, "hookId", "hookId is last");
    fields.shift_remove("hookId");
    serde_json::to_string(&body).unwrap()
}

/// `2026-11-24T10:00:00.000Z`.
fn is_iso_millis(s: &str) -> bool {
    let shape = "dddd-dd-ddTdd:dd:dd.dddZ";
    s.len() == shape.len()
        && s.chars()
            .zip(shape.chars())
            .all(|(c, f)| if f == 'd' { c.is_ascii_digit() } else { c == f })
}

/// Appends `extras`'s fields, in order, to the object `base`.
fn with(mut base: Value, extras: Value) -> Value {
    let fields = base.as_object_mut().unwrap();
    fields.extend(extras.as_object().unwrap().clone());
    base
}

/// One row of the route table, as a case: the call and the payloads it must deliver
/// (without `createdAt` and `hookId`), in order.
struct Case {
    call: Value,
    expected: Vec<Value>,
}

fn case(
    (method, route, path): (&str, &str, &str),
    params: Value,
    status: u16,
    (request, response): (Value, Value),
    emits: &[(&str, Value)],
) -> Case {
    let mut call = json!({
        "method": method, "matchedRoute": route, "path": format!("/api{path}"),
        "params": params, "status": status, "userAgent": UA, "ip": IP
    });
    for (key, body) in [("requestBody", request), ("responseBody", response)] {
        if !body.is_null() {
            call[key] = body;
        }
    }
    let expected = emits
        .iter()
        .map(|(event, extras)| {
            let context = json!({
                "event": event, "userAgent": UA, "ip": IP, "path": path, "method": method,
                "status": status, "params": params, "matchedRoute": route
            });
            with(context, extras.clone())
        })
        .collect();
    Case { call, expected }
}

fn user_record() -> Value {
    json!({
        "passwordEncrypted": "$argon2i$v=19$m=4096,t=256,p=1$c2FsdA$aGFzaA", "isSuspended": false,
        "applicationId": "app_web", "profile": {}, "updatedAt": 1_764_000_000_000_i64,
        "createdAt": 1_732_400_000_000_i64, "lastSignInAt": 1_764_000_000_000_i64,
        "identities": {"google": {"userId": "g-123", "details": {}}}, "customData": {"plan": "pro"},
        "avatar": null, "name": "Ann Lee", "primaryPhone": null,
        "primaryEmail": "ann@example.com", "username": "ann", "id": "u_ann"
    })
}

/// The user as Logto's payloads carry it: user-info fields only, in Logto's order.
fn user_info() -> Value {
    json!({
        "id": "u_ann", "username": "ann", "primaryEmail": "ann@example.com", "primaryPhone": null,
        "name": "Ann Lee", "avatar": null, "customData": {"plan": "pro"},
        "identities": {"google": {"userId": "g-123", "details": {}}},
        "lastSignInAt": 1_764_000_000_000_i64, "createdAt": 1_732_400_000_000_i64,
        "updatedAt": 1_764_000_000_000_i64, "profile": {}, "applicationId": "app_web",
        "isSuspended": false
    })
}

fn application_record() -> Value {
    json!({"secret": "s3cr3t", "description": "Customer portal", "name": "Portal", "type": "SPA", "id": "app_web"})
}

fn application_info() -> Value {
    json!({"id": "app_web", "type": "SPA", "name": "Portal", "description": "Customer portal"})
}

/// The 30 rows of the seeds' route table.
fn route_cases() -> Vec<Case> {
    let user = json!({"userId": "u1"});
    let role = json!({"id": "r1"});
    let org = json!({"id": "o1"});
    let org_role = json!({"id": "or1"});
    let org_scope = json!({"id": "os1"});
    let scope = json!({"resourceId": "res1", "scopeId": "s1"});
    let entity = |id: &str| json!({"id": id, "name": format!("name of {id}")});
    let change = json!({"name": "renamed"});
    let none = Value::Null;
    let data = |v: Value| json!({"data": v});
    let no_data = json!({});
    vec![
        case(
            ("POST", "/users", "/users"),
            json!({}),
            201,
            (json!({"username": "ann"}), entity("u1")),
            &[("User.Created", data(entity("u1")))],
        ),
        case(
            ("DELETE", "/users/:userId", "/users/u_ann"),
            json!({"userId": "u_ann"}),
            204,
            (none.clone(), user_record()),
            &[("User.Deleted", data(user_info()))],
        ),
        case(
            ("PATCH", "/users/:userId", "/users/u1"),
            user.clone(),
            200,
            (change.clone(), entity("u1")),
            &[("User.Data.Updated", data(entity("u1")))],
        ),
        case(
            (
                "PATCH",
                "/users/:userId/custom-data",
                "/users/u1/custom-data",
            ),
            user.clone(),
            200,
            (
                json!({"customData": {"theme": "dark"}}),
                json!({"theme": "dark"}),
            ),
            &[("User.Data.Updated", data(json!({"theme": "dark"})))],
        ),
        case(
            ("PATCH", "/users/:userId/profile", "/users/u1/profile"),
            user.clone(),
            200,
            (
                json!({"profile": {"givenName": "Ann"}}),
                json!({"givenName": "Ann"}),
            ),
            &[("User.Data.Updated", data(json!({"givenName": "Ann"})))],
        ),
        case(
            ("PATCH", "/users/:userId/password", "/users/u1/password"),
            user.clone(),
            200,
            (json!({"password": "new"}), entity("u1")),
            &[("User.Data.Updated", data(entity("u1")))],
        ),
        case(
            (
                "PATCH",
                "/users/:userId/is-suspended",
                "/users/u1/is-suspended",
            ),
            user.clone(),
            200,
            (
                json!({"isSuspended": true}),
                json!({"id": "u1", "isSuspended": true}),
            ),
            &[(
                "User.SuspensionStatus.Updated",
                data(json!({"id": "u1", "isSuspended": true})),
            )],
        ),
        case(
            ("POST", "/roles", "/roles"),
            json!({}),
            200,
            (
                json!({"name": "admin", "scopeIds": ["s1", "s2"]}),
                entity("r1"),
            ),
            &[
                ("Role.Created", data(entity("r1"))),
                (
                    "Role.Scopes.Updated",
                    json!({"roleId": "r1", "data": [{"id": "s1"}, {"id": "s2"}]}),
                ),
            ],
        ),
        case(
            ("DELETE", "/roles/:id", "/roles/r1"),
            role.clone(),
            204,
            (none.clone(), none.clone()),
            &[("Role.Deleted", no_data.clone())],
        ),
        case(
            ("PATCH", "/roles/:id", "/roles/r1"),
            role.clone(),
            200,
            (change.clone(), entity("r1")),
            &[("Role.Data.Updated", data(entity("r1")))],
        ),
        case(
            ("POST", "/roles/:id/scopes", "/roles/r1/scopes"),
            role.clone(),
            201,
            (json!({"scopeIds": ["s3"]}), json!([entity("s3")])),
            &[("Role.Scopes.Updated", data(json!([entity("s3")])))],
        ),
        case(
            (
                "DELETE",
                "/roles/:id/scopes/:scopeId",
                "/roles/r1/scopes/s3",
            ),
            json!({"id": "r1", "scopeId": "s3"}),
            204,
            (none.clone(), none.clone()),
            &[("Role.Scopes.Updated", no_data.clone())],
        ),
        case(
            (
                "POST",
                "/resources/:resourceId/scopes",
                "/resources/res1/scopes",
            ),
            json!({"resourceId": "res1"}),
            201,
            (json!({"name": "read:docs"}), entity("s1")),
            &[("Scope.Created", data(entity("s1")))],
        ),
        case(
            (
                "DELETE",
                "/resources/:resourceId/scopes/:scopeId",
                "/resources/res1/scopes/s1",
            ),
            scope.clone(),
            204,
            (none.clone(), entity("s1")),
            &[("Scope.Deleted", no_data.clone())],
        ),
        case(
            (
                "PATCH",
                "/resources/:resourceId/scopes/:scopeId",
                "/resources/res1/scopes/s1",
            ),
            scope.clone(),
            200,
            (change.clone(), entity("s1")),
            &[("Scope.Data.Updated", data(entity("s1")))],
        ),
        case(
            ("POST", "/organizations", "/organizations"),
            json!({}),
            201,
            (json!({"name": "Acme"}), entity("o1")),
            &[("Organization.Created", data(entity("o1")))],
        ),
        case(
            ("DELETE", "/organizations/:id", "/organizations/o1"),
            org.clone(),
            204,
            (none.clone(), none.clone()),
            &[("Organization.Deleted", no_data.clone())],
        ),
        case(
            ("PATCH", "/organizations/:id", "/organizations/o1"),
            org.clone(),
            200,
            (change.clone(), entity("o1")),
            &[("Organization.Data.Updated", data(entity("o1")))],
        ),
        {
            let mut put = case(
                ("PUT", "/organizations/:id/users", "/organizations/o1/users"),
                org.clone(),
                204,
                (json!({"userIds": ["u1", "u2"]}), none.clone()),
                &[(
                    "Organization.Membership.Updated",
                    json!({"organizationId": "o1", "addedUserIds": ["u2"], "removedUserIds": ["u9"]}),
                )],
            );
            put.call["membershipDelta"] = json!({"removedUserIds": ["u9"], "addedUserIds": ["u2"]});
            put
        },
        case(
            (
                "POST",
                "/organizations/:id/users",
                "/organizations/o1/users",
            ),
            org.clone(),
            201,
            (
                json!({"userIds": ["u3", "u3", "u4"]}),
                json!({"userIds": ["u3", "u3", "u4"]}),
            ),
            &[(
                "Organization.Membership.Updated",
                json!({"organizationId": "o1", "addedUserIds": ["u3", "u4"]}),
            )],
        ),
        case(
            (
                "DELETE",
                "/organizations/:id/users/:userId",
                "/organizations/o1/users/u5",
            ),
            json!({"id": "o1", "userId": "u5"}),
            204,
            (none.clone(), none.clone()),
            &[(
                "Organization.Membership.Updated",
                json!({"organizationId": "o1", "removedUserIds": ["u5"]}),
            )],
        ),
        case(
            ("POST", "/organization-roles", "/organization-roles"),
            json!({}),
            201,
            (
                json!({"name": "viewer", "organizationScopeIds": ["os1"]}),
                entity("or1"),
            ),
            &[
                ("OrganizationRole.Created", data(entity("or1"))),
                (
                    "OrganizationRole.Scopes.Updated",
                    json!({"organizationRoleId": "or1"}),
                ),
            ],
        ),
        case(
            (
                "DELETE",
                "/organization-roles/:id",
                "/organization-roles/or1",
            ),
            org_role.clone(),
            204,
            (none.clone(), none.clone()),
            &[("OrganizationRole.Deleted", no_data.clone())],
        ),
        case(
            (
                "PATCH",
                "/organization-roles/:id",
                "/organization-roles/or1",
            ),
            org_role.clone(),
            200,
            (change.clone(), entity("or1")),
            &[("OrganizationRole.Data.Updated", data(entity("or1")))],
        ),
        case(
            ("POST", "/organization-scopes", "/organization-scopes"),
            json!({}),
            201,
            (json!({"name": "read:members"}), entity("os1")),
            &[("OrganizationScope.Created", data(entity("os1")))],
        ),
        case(
            (
                "DELETE",
                "/organization-scopes/:id",
                "/organization-scopes/os1",
            ),
            org_scope.clone(),
            204,
            (none.clone(), none.clone()),
            &[("OrganizationScope.Deleted", no_data.clone())],
        ),
        case(
            (
                "PATCH",
                "/organization-scopes/:id",
                "/organization-scopes/os1",
            ),
            org_scope.clone(),
            200,
            (change.clone(), entity("os1")),
            &[("OrganizationScope.Data.Updated", data(entity("os1")))],
        ),
        case(
            (
                "PUT",
                "/organization-roles/:id/scopes",
                "/organization-roles/or1/scopes",
            ),
            org_role.clone(),
            204,
            (
                json!({"organizationScopeIds": ["os1", "os2"]}),
                none.clone(),
            ),
            &[("OrganizationRole.Scopes.Updated", no_data.clone())],
        ),
        case(
            (
                "POST",
                "/organization-roles/:id/scopes",
                "/organization-roles/or1/scopes",
            ),
            org_role.clone(),
            201,
            (json!({"organizationScopeIds": ["os3"]}), none.clone()),
            &[("OrganizationRole.Scopes.Updated", no_data.clone())],
        ),
        case(
            (
                "DELETE",
                "/organization-roles/:id/scopes/:organizationScopeId",
                "/organization-roles/or1/scopes/os3",
            ),
            json!({"id": "or1", "organizationScopeId": "os3"}),
            204,
            (none.clone(), none.clone()),
            &[("OrganizationRole.Scopes.Updated", no_data)],
        ),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_of_the_table_publishes_exactly_its_events_in_order() {
    let p = Pipeline::start("routes").await;
    let receiver = subscribe_all(&p).await;
    let cases = route_cases();
    let rows: BTreeSet<(String, String)> = cases
        .iter()
        .map(|c| {
            (
                c.call["method"].to_string(),
                c.call["matchedRoute"].to_string(),
            )
        })
        .collect();
    assert_eq!(rows.len(), ROUTES.len(), "one case per row of the table");

    let mut expected = HashMap::new();
    for case in &cases {
        let answer = post(
            &p.http,
            p.producer.addr,
            "/api/management-api-calls",
            &case.call,
            None,
        )
        .await;
        assert_eq!(answer.status, 202, "{}", answer.body);
        let events = answer.events();
        let names: Vec<&str> = events.iter().map(|(_, e)| e.as_str()).collect();
        let wanted: Vec<&str> = case
            .expected
            .iter()
            .map(|e| e["event"].as_str().unwrap())
            .collect();
        assert_eq!(names, wanted, "{}", case.call);
        for ((id, _), payload) in events.into_iter().zip(&case.expected) {
            expected.insert(id, serde_json::to_string(payload).unwrap());
        }
    }
    for silent in [
        json!({"method": "GET", "matchedRoute": "/users/:userId", "path": "/users/u1", "params": {"userId": "u1"}, "status": 200}),
        json!({"method": "POST", "matchedRoute": "/users", "path": "/users", "params": {}, "status": 422}),
    ] {
        let answer = post(
            &p.http,
            p.producer.addr,
            "/api/management-api-calls",
            &silent,
            None,
        )
        .await;
        assert_eq!(
            (answer.status, answer.body),
            (202, json!({"events": []})),
            "{silent}"
        );
    }
    // A route the table does not have, or a typo of one, is said to be unknown.
    for unknown in [
        json!({"method": "POST", "matchedRoute": "/applications", "path": "/applications", "params": {}, "status": 201}),
        json!({"method": "PATCH", "matchedRoute": "/users/:id", "path": "/users/u1", "params": {"id": "u1"}, "status": 200}),
    ] {
        let res = p
            .http
            .post(format!(
                "http://{}/api/management-api-calls",
                p.producer.addr
            ))
            .bearer_auth(INGEST_TOKEN)
            .json(&unknown)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 202);
        assert_eq!(
            res.headers()["x-hookbus-unknown-route"],
            "true",
            "{unknown}"
        );
        let body: Value = res.json().await.unwrap();
        assert_eq!(
            body,
            json!({"events": [], "unknownRoute": true}),
            "{unknown}"
        );
    }

    let got = delivered(&p, &receiver, expected.len()).await;
    for (id, payload) in &expected {
        assert_eq!(&stable(&got[id]), payload);
    }
    p.stop().await;
}

fn interaction(flow: &str, actions: Value) -> Value {
    json!({
        "interactionEvent": flow, "sessionId": "sess_01", "userId": "u_ann",
        "user": user_record(), "application": application_record(),
        "userAgent": "Mozilla/5.0", "userIp": "203.0.113.7", "actions": actions
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_interaction_flow_and_action_emits_its_events_with_logto_payloads() {
    let p = Pipeline::start("interactions").await;
    let receiver = subscribe_all(&p).await;
    let cases = [
        ("SignIn", json!([]), vec!["PostSignIn"]),
        ("Register", json!([]), vec!["PostRegister", "User.Created"]),
        (
            "ForgotPassword",
            json!([]),
            vec!["PostResetPassword", "User.Data.Updated"],
        ),
        (
            "SignIn",
            json!(["emailPhoneLinking"]),
            vec!["PostSignIn", "User.Data.Updated"],
        ),
        (
            "SignIn",
            json!(["mfaLinking"]),
            vec!["PostSignIn", "User.Data.Updated"],
        ),
        (
            "SignIn",
            json!(["socialSsoLinking"]),
            vec!["PostSignIn", "User.Data.Updated"],
        ),
        (
            "SignIn",
            json!(["passwordReset"]),
            vec!["PostSignIn", "User.Data.Updated"],
        ),
        (
            "SignIn",
            json!(["registration"]),
            vec!["PostSignIn", "User.Created"],
        ),
        (
            "Register",
            json!(["mfaLinking", "emailPhoneLinking"]),
            vec!["PostRegister", "User.Created", "User.Data.Updated"],
        ),
    ];
    let mut expected = HashMap::new();
    for (flow, actions, events) in cases {
        let answer = post(
            &p.http,
            p.producer.addr,
            "/api/interactions",
            &interaction(flow, actions),
            None,
        )
        .await;
        assert_eq!(answer.status, 202, "{}", answer.body);
        let got = answer.events();
        let names: Vec<&str> = got.iter().map(|(_, e)| e.as_str()).collect();
        assert_eq!(names, events, "{flow}");
        for (id, event) in got {
            let payload = if event.starts_with("Post") {
                json!({
                    "event": event, "interactionEvent": flow, "sessionId": "sess_01",
                    "userAgent": "Mozilla/5.0", "userId": "u_ann", "userIp": "203.0.113.7",
                    "user": user_info(), "application": application_info()
                })
            } else {
                json!({
                    "event": event, "interactionEvent": flow, "userAgent": "Mozilla/5.0",
                    "applicationId": "app_web", "sessionId": "sess_01", "ip": "203.0.113.7",
                    "application": application_info(), "data": user_info()
                })
            };
            expected.insert(id, serde_json::to_string(&payload).unwrap());
        }
    }
    let got = delivered(&p, &receiver, expected.len()).await;
    for (id, payload) in &expected {
        assert_eq!(&stable(&got[id]), payload);
    }
    p.stop().await;
}

/// The delivered body with its `createdAt` and `hookId` values replaced by placeholders,
/// everything else byte for byte.
fn normalized(r: &Received) -> String {
    let body = std::str::from_utf8(&r.body).unwrap();
    let parsed = r.json();
    let created_at = parsed["createdAt"].as_str().unwrap();
    let hook_id = parsed["hookId"].as_str().unwrap();
    assert!(is_iso_millis(created_at), "{created_at}");
    body.replacen(
        &format!("\"createdAt\":\"{created_at}\""),
        "\"createdAt\":\"<createdAt>\"",
        1,
    )
    .replacen(
        &format!(",\"hookId\":\"{hook_id}\"}}"),
        ",\"hookId\":\"<hookId>\"}",
        1,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn golden_payloads_of_each_kind_byte_for_byte() {
    let p = Pipeline::start("golden").await;
    let receiver = subscribe_all(&p).await;
    let cases = [
        (
            "interaction",
            "/api/interactions",
            interaction("SignIn", json!([])),
            0,
        ),
        (
            "experience",
            "/api/interactions",
            interaction("Register", json!([])),
            1,
        ),
        (
            "management-api",
            "/api/management-api-calls",
            json!({"ip": IP, "userAgent": UA, "responseBody": {"id": "u_ann", "name": "Ann Lee"},
                   "requestBody": {"name": "Ann Lee"}, "status": 200, "params": {"userId": "u_ann"},
                   "path": "/api/users/u_ann", "matchedRoute": "/users/:userId", "method": "PATCH"}),
            0,
        ),
        (
            "membership",
            "/api/management-api-calls",
            json!({"method": "PUT", "matchedRoute": "/organizations/:id/users",
                   "path": "/organizations/org_1/users", "params": {"id": "org_1"}, "status": 204,
                   "requestBody": {"userIds": ["u_ann", "u_carl"]}, "userAgent": UA, "ip": IP,
                   "membershipDelta": {"removedUserIds": ["u_bob"], "addedUserIds": ["u_ann"]}}),
            0,
        ),
        (
            "exception-identifier-lockout",
            "/api/events",
            json!({"value": "ann@example.com", "type": "email",
                   "application": {"description": "Customer portal", "name": "Portal", "type": "SPA", "id": "app_web"},
                   "ip": "203.0.113.7", "sessionId": "sess_01", "applicationId": "app_web",
                   "userAgent": "Mozilla/5.0", "interactionEvent": "SignIn", "event": "Identifier.Lockout"}),
            0,
        ),
        (
            "exception-message-rate-limited",
            "/api/events",
            json!({"recipient": "+15550100", "action": "VerificationCodeSend", "ip": "203.0.113.7",
                   "userAgent": "Mozilla/5.0", "event": "Message.RateLimited"}),
            0,
        ),
        (
            "exception-grant-limit-exceeded",
            "/api/events",
            json!({"preRevocationActiveGrantCount": 3, "maxAllowedGrants": 2, "revokedGrantIds": ["grant_1"],
                   "applicationId": "app_web", "userId": "u_ann", "application": application_info(),
                   "userAgent": "Mozilla/5.0", "ip": "203.0.113.7", "event": "Grant.LimitExceeded"}),
            0,
        ),
        (
            "interaction-adaptive-mfa",
            "/api/events",
            json!({"event": "PostSignInAdaptiveMfaTriggered", "userIp": "203.0.113.7", "userId": "u_ann",
                   "sessionId": "sess_01", "interactionEvent": "SignIn",
                   "adaptiveMfaResult": {"requiresMfa": true, "triggeredRules": [{"rule": "untrusted_ip"}]},
                   "userAgent": "Mozilla/5.0", "user": user_info(), "application": application_info()}),
            0,
        ),
    ];
    let mut wanted = Vec::new();
    let mut published = 0;
    for (name, path, body, index) in &cases {
        let answer = post(&p.http, p.producer.addr, path, body, None).await;
        assert_eq!(answer.status, 202, "{name}: {}", answer.body);
        let ids: Vec<String> = match answer.body.get("id") {
            Some(id) => vec![id.as_str().unwrap().to_owned()],
            None => answer.events().into_iter().map(|(id, _)| id).collect(),
        };
        published += ids.len();
        wanted.push((*name, ids[*index].clone()));
    }
    let got = delivered(&p, &receiver, published).await;
    for (name, id) in wanted {
        let golden =
            std::fs::read_to_string(format!("{}/golden/{name}.json", env!("CARGO_MANIFEST_DIR")))
                .unwrap();
        assert_eq!(
            normalized(&got[&id]),
            golden.trim_end_matches('\n'),
            "{name}"
        );
    }
    p.stop().await;
}

fn role_with_scopes() -> Value {
    json!({"method": "POST", "matchedRoute": "/roles", "path": "/roles", "params": {}, "status": 200,
           "requestBody": {"name": "admin", "scopeIds": ["s1"]}, "responseBody": {"id": "r1"}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_idempotency_key_publishes_once_and_answers_the_same_ids() {
    let p = Pipeline::start("idempotency").await;
    let receiver = subscribe_all(&p).await;
    let (http, addr) = (&p.http, p.producer.addr);
    let calls = "/api/management-api-calls";

    let first = post(http, addr, calls, &role_with_scopes(), Some("retry-1")).await;
    assert_eq!(
        (first.status, first.events().len(), first.replayed),
        (202, 2, false)
    );
    let again = post(http, addr, calls, &role_with_scopes(), Some("retry-1")).await;
    assert_eq!((again.status, again.replayed), (202, true));
    assert_eq!(again.body, first.body, "the same ids");
    let other = post(http, addr, calls, &json!({"method": "POST", "matchedRoute": "/users", "path": "/users", "params": {}, "status": 201}), Some("retry-1")).await;
    assert_eq!(
        (other.status, other.body["code"].as_str()),
        (422, Some("idempotency.key_reused"))
    );

    let event = json!({"event": "PostSignIn", "userId": "u1"});
    let one = post(http, addr, "/api/events", &event, Some("\"event-1\"")).await;
    let two = post(http, addr, "/api/events", &event, Some("\"event-1\"")).await;
    assert_eq!((one.status, two.status, two.replayed), (202, 202, true));
    assert_eq!(one.body["id"], two.body["id"]);

    // Concurrent requests with one key: one publishes, the others wait their turn (409) or
    // get its answer; none publishes again.
    let role = role_with_scopes();
    let racing = (0..8).map(|_| post(http, addr, calls, &role, Some("race-1")));
    let answers = futures::future::join_all(racing).await;
    let accepted: Vec<&Answer> = answers.iter().filter(|a| a.status == 202).collect();
    assert!(!accepted.is_empty());
    assert!(answers.iter().all(|a| a.status == 202 || a.status == 409));
    assert!(accepted.iter().all(|a| a.body == accepted[0].body));
    let after = post(http, addr, calls, &role_with_scopes(), Some("race-1")).await;
    assert_eq!((after.status, &after.body), (202, &accepted[0].body));

    let got = delivered(&p, &receiver, 2 + 1 + 2).await;
    for (id, _) in first.events().iter().chain(&accepted[0].events()) {
        assert!(got.contains_key(id));
    }
    assert!(got.contains_key(one.body["id"].as_str().unwrap()));
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_publish_leaves_the_key_free_for_the_retry() {
    let p = Pipeline::start("idempotency-failure").await;
    let receiver = subscribe_all(&p).await;
    let broken =
        pipeline::start_producer(&p.prefix, "amqp://guest:guest@127.0.0.1:1/%2f", 256 * 1024).await;
    let calls = "/api/management-api-calls";
    let failed = post(
        &p.http,
        broken.addr,
        calls,
        &role_with_scopes(),
        Some("timeout-1"),
    )
    .await;
    assert_eq!(failed.status, 503, "{}", failed.body);
    broken.stop().await;

    let retried = post(
        &p.http,
        p.producer.addr,
        calls,
        &role_with_scopes(),
        Some("timeout-1"),
    )
    .await;
    assert_eq!(
        (retried.status, retried.replayed),
        (202, false),
        "{}",
        retried.body
    );
    let got = delivered(&p, &receiver, 2).await;
    for (id, _) in retried.events() {
        assert!(got.contains_key(&id));
    }
    p.stop().await;
}

/// A producer whose Redis is `redis_url`: the harness's always uses the local one.
async fn start_producer_with_redis(
    prefix: &str,
    redis_url: &str,
) -> (SocketAddr, CancellationToken, tokio::task::JoinHandle<()>) {
    let servers = pipeline::Servers {
        redis_url: redis_url.into(),
        ..pipeline::Servers::default()
    };
    let config = pipeline::producer_config(prefix, &servers, 1024);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let shutdown = CancellationToken::new();
    let stop = shutdown.clone();
    let task = tokio::spawn(async move {
        if let Err(err) = hookbus_producer::run(config, listener, stop).await {
            panic!("producer failed: {err}");
        }
    });
    (addr, shutdown, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_requests_publish_nothing_and_redis_is_needed_only_with_a_key() {
    let prefix = pipeline::unique_prefix("sources-refusals");
    let mut cleanup = pipeline::Cleanup::new(&prefix, &[]);
    let (addr, shutdown, task) = start_producer_with_redis(&prefix, "redis://127.0.0.1:1").await;
    let http = reqwest::Client::new();
    let calls = "/api/management-api-calls";
    let interactions = "/api/interactions";
    for (path, body, needle) in [
        (
            calls,
            json!({"method": "POST", "matchedRoute": "/users", "path": "/users", "status": 201}),
            "`params`",
        ),
        (
            calls,
            json!({"method": "POST", "matchedRoute": "/users", "path": "/users", "params": {}, "status": "201"}),
            "`status`",
        ),
        (
            calls,
            json!({"method": "POST", "matchedRoute": "/users", "path": "/users", "params": {}, "status": 201, "ipAddress": "x"}),
            "`ipAddress`",
        ),
        (
            interactions,
            json!({"interactionEvent": "SignUp", "sessionId": "s", "userId": "u", "user": {}}),
            "`interactionEvent`",
        ),
        (
            interactions,
            json!({"interactionEvent": "SignIn", "sessionId": "s", "user": {}}),
            "`userId`",
        ),
        (
            interactions,
            json!({"interactionEvent": "SignIn", "sessionId": "s", "userId": "u", "user": {}, "actions": ["fly"]}),
            "`actions[0]`",
        ),
        (
            interactions,
            json!({"interactionEvent": "SignIn", "sessionId": "s", "userId": "u", "user": "ann"}),
            "`user`",
        ),
    ] {
        let answer = post(&http, addr, path, &body, None).await;
        assert_eq!(answer.status, 400, "{body}");
        assert!(
            answer.body["message"].as_str().unwrap().contains(needle),
            "{} lacks {needle}",
            answer.body
        );
    }
    let unauthorized = http
        .post(format!("http://{addr}{calls}"))
        .json(&role_with_scopes())
        .send()
        .await
        .unwrap();
    assert_eq!(unauthorized.status(), 401);
    let mut big = interaction("SignIn", json!([]));
    big["user"]["bio"] = "x".repeat(2048).into();
    assert_eq!(
        post(&http, addr, interactions, &big, None).await.status,
        413
    );
    let bad_key = post(&http, addr, calls, &role_with_scopes(), Some("with space")).await;
    assert_eq!(bad_key.status, 400);

    let events_queue = hookbus_contracts::topology::Topology::new(&prefix).events_queue();
    assert_eq!(
        queue_depth(&events_queue).await,
        Some(0),
        "a refused request published something"
    );

    // Redis is down: a request with a key is refused (nothing published), one without works,
    // and the producer is ready.
    let keyed = post(&http, addr, calls, &role_with_scopes(), Some("k-1")).await;
    assert_eq!(
        (keyed.status, keyed.body["code"].as_str()),
        (503, Some("service.unavailable"))
    );
    assert_eq!(queue_depth(&events_queue).await, Some(0));
    let plain = post(&http, addr, calls, &role_with_scopes(), None).await;
    assert_eq!((plain.status, plain.events().len()), (202, 2));
    assert_eq!(queue_depth(&events_queue).await, Some(2));
    let ready = http
        .get(format!("http://{addr}/readyz"))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);

    shutdown.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(15), task).await;
    cleanup.run().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_simulator_sends_bounded_traffic_over_every_route_and_interaction() {
    let p = Pipeline::start("simulate").await;
    let receiver = subscribe_all(&p).await;
    let args = SimulateArgs {
        rate: 40,
        duration: 2,
        producer: p.producer.addr.to_string(),
        ingest_token: INGEST_TOKEN.into(),
        seed: 11,
    };
    let started = std::time::Instant::now();
    let report = simulate::run(&args, CancellationToken::new())
        .await
        .unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "bounded in time"
    );
    assert!(report.sent <= 80, "bounded in count: {report}");
    assert!(
        report.sent as usize >= simulate::Traffic::coverage_len(),
        "{report}"
    );
    assert_eq!(
        (report.accepted, report.refused, report.failed),
        (report.sent, 0, 0),
        "{report}"
    );

    let got = delivered(&p, &receiver, report.events as usize).await;
    let seen: BTreeSet<String> = got
        .values()
        .map(|r| r.json()["event"].as_str().unwrap().to_owned())
        .collect();
    let mut wanted: BTreeSet<String> = ROUTES
        .iter()
        .flat_map(|r| r.emits().map(|(e, _)| e.as_str().to_owned()))
        .collect();
    wanted.extend(
        [
            "PostSignIn",
            "PostRegister",
            "PostResetPassword",
            "User.Created",
            "User.Data.Updated",
        ]
        .map(String::from),
    );
    assert_eq!(seen, wanted);

    let refused = SimulateArgs {
        ingest_token: "not-the-token".into(),
        duration: 1,
        ..args
    };
    let err = simulate::run(&refused, CancellationToken::new())
        .await
        .expect_err("a run whose every request was refused fails");
    assert!(
        matches!(&err, simulate::SimulateError::NoneAccepted(r) if r.refused == r.sent),
        "{err}"
    );
    p.stop().await;
}
