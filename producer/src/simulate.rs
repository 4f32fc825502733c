//! `producer simulate`: realistic mixed auth traffic through the ingest API, for the demo and
//! the benchmarks.
//!
//! [`Traffic`] (pure, seeded) makes the requests: first one of every row of the route table
//! and of every interaction flow and action, so that any run covers them all, then a mix like
//! an identity service's day: mostly sign-ins, some registrations and password resets,
//! Management API calls over every route, and calls that emit nothing (reads, failed calls).
//! [`run`] sends them at `--rate` a second for `--duration` seconds: never more than
//! `rate × duration` requests, never more than [`IN_FLIGHT`] at once, and it stops at the
//! deadline (or on shutdown) after the requests in flight are answered.

use std::sync::Arc;
use std::time::{Duration, Instant};

use hookbus_contracts::payload::Payload;
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::api_call::{ApiCall, MembershipDelta};
use crate::interaction::{Action, Interaction, InteractionEvent};
use crate::route_table::{Route, ROUTES};

/// Requests awaiting their answer at most.
pub const IN_FLIGHT: usize = 64;
/// Distinct users the traffic signs in, so the same ones come back.
const USERS: u32 = 5_000;
const USER_AGENTS: &[&str] = &[
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/126.0 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 Version/17.5 Safari/605.1.15",
    "okhttp/4.12.0",
];
const APPLICATIONS: &[(&str, &str, &str)] = &[
    ("app-web", "SPA", "Customer portal"),
    ("app-ios", "Native", "iOS app"),
    ("app-admin", "Traditional", "Admin console"),
];

#[derive(clap::Args, Debug, Clone)]
pub struct SimulateArgs {
    /// Requests a second.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub rate: u32,
    /// Seconds to send for.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub duration: u64,
    /// The producer's address (its ingest API).
    #[arg(
        long,
        env = "HOOKBUS_PRODUCER_LISTEN",
        default_value = "127.0.0.1:7801"
    )]
    pub producer: String,
    /// The ingest API's bearer token.
    #[arg(long, env = "HOOKBUS_INGEST_TOKEN", hide_env_values = true)]
    pub ingest_token: String,
    /// Seed of the traffic: the same seed sends the same requests.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum SimulateError {
    #[error("HTTP client: {0}")]
    Client(#[from] reqwest::Error),
    /// A run the producer accepted nothing of is a failure, not a report: the usual causes
    /// are a wrong token or address, which a caller must hear about.
    #[error("{0}: the producer accepted none (is it at that address, with that token?)")]
    NoneAccepted(Report),
}

/// One ingest request.
#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    ApiCall(ApiCall),
    Interaction(Interaction),
}

impl Request {
    pub fn path(&self) -> &'static str {
        match self {
            Request::ApiCall(_) => "/api/management-api-calls",
            Request::Interaction(_) => "/api/interactions",
        }
    }

    pub fn body(&self) -> Vec<u8> {
        let body = match self {
            Request::ApiCall(call) => serde_json::to_vec(call),
            Request::Interaction(interaction) => serde_json::to_vec(interaction),
        };
        body.expect("a request always serializes")
    }
}

/// What kind of request comes next.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Call(&'static Route),
    Failed(&'static Route),
    Read,
    Flow(InteractionEvent, Option<Action>),
}

/// Every row and every flow and action, once.
fn coverage() -> Vec<Kind> {
    let flows = [
        InteractionEvent::SignIn,
        InteractionEvent::Register,
        InteractionEvent::ForgotPassword,
    ];
    let routes = ROUTES.iter().map(Kind::Call);
    let flows = flows.into_iter().map(|flow| Kind::Flow(flow, None));
    let actions = Action::ALL
        .into_iter()
        .map(|action| Kind::Flow(InteractionEvent::SignIn, Some(action)));
    routes.chain(flows).chain(actions).collect()
}

/// The request generator.
pub struct Traffic {
    rng: StdRng,
    coverage: std::vec::IntoIter<Kind>,
}

impl Traffic {
    pub fn new(seed: u64) -> Traffic {
        Traffic {
            rng: StdRng::seed_from_u64(seed),
            coverage: coverage().into_iter(),
        }
    }

    /// How many requests cover every route, flow and action.
    pub fn coverage_len() -> usize {
        coverage().len()
    }

    pub fn next_request(&mut self) -> Request {
        let kind = self.coverage.next().unwrap_or_else(|| self.mixed());
        match kind {
            Kind::Call(route) => Request::ApiCall(self.api_call(route)),
            Kind::Failed(route) => Request::ApiCall(ApiCall {
                status: 422,
                ..self.api_call(route)
            }),
            Kind::Read => Request::ApiCall(self.read()),
            Kind::Flow(flow, action) => Request::Interaction(self.interaction(flow, action)),
        }
    }

    /// A day's mix: 55 % sign-ins (a tenth of them linking something), 8 % registrations,
    /// 4 % password resets, 25 % Management API changes, 5 % reads, 3 % failed calls.
    fn mixed(&mut self) -> Kind {
        let route = ROUTES.choose(&mut self.rng).expect("the table has rows");
        match self.rng.random_range(0..100) {
            0..55 => {
                let linking = [
                    Action::EmailPhoneLinking,
                    Action::MfaLinking,
                    Action::SocialSsoLinking,
                ];
                let action = self
                    .rng
                    .random_bool(0.1)
                    .then(|| *linking.choose(&mut self.rng).expect("non-empty"));
                Kind::Flow(InteractionEvent::SignIn, action)
            }
            55..63 => Kind::Flow(InteractionEvent::Register, None),
            63..67 => Kind::Flow(InteractionEvent::ForgotPassword, None),
            67..92 => Kind::Call(route),
            92..97 => Kind::Read,
            _ => Kind::Failed(route),
        }
    }

    fn interaction(&mut self, flow: InteractionEvent, action: Option<Action>) -> Interaction {
        let user_id = self.user_id();
        let (id, kind, name) = *APPLICATIONS.choose(&mut self.rng).expect("non-empty");
        let application = json!({"id": id, "type": kind, "name": name, "description": null});
        Interaction {
            interaction_event: flow,
            session_id: format!("session-{:016x}", self.rng.random::<u64>()),
            user: user(&user_id),
            user_id,
            application: application.as_object().cloned(),
            user_agent: Some(self.user_agent()),
            user_ip: Some(self.ip()),
            actions: action.into_iter().collect(),
        }
    }

    fn api_call(&mut self, route: &Route) -> ApiCall {
        let (path, params) = fill(route.route, self.rng.random_range(1..USERS));
        let (request_body, response_body) = self.bodies(route, &params);
        let membership_delta =
            (route.method == "PUT" && route.route.ends_with("/users")).then(|| MembershipDelta {
                added_user_ids: vec![self.user_id()],
                removed_user_ids: vec![self.user_id()],
                ..Default::default()
            });
        ApiCall {
            method: route.method.to_owned(),
            matched_route: route.route.to_owned(),
            path,
            params,
            status: status_of(route.method),
            request_body,
            response_body,
            user_agent: Some("my-auth-service/1.4".into()),
            ip: Some(self.ip()),
            membership_delta,
        }
    }

    fn read(&mut self) -> ApiCall {
        let user_id = self.user_id();
        let params = json!({"userId": user_id});
        ApiCall {
            method: "GET".into(),
            matched_route: "/users/:userId".into(),
            path: format!("/users/{user_id}"),
            params: params.as_object().cloned().unwrap_or_default(),
            status: 200,
            request_body: None,
            response_body: Some(Value::Object(user(&user_id))),
            user_agent: Some("my-auth-service/1.4".into()),
            ip: Some(self.ip()),
            membership_delta: None,
        }
    }

    /// The request and response bodies a real handler of the route would see.
    fn bodies(&mut self, route: &Route, params: &Payload) -> (Option<Value>, Option<Value>) {
        let target = params.values().next_back().and_then(Value::as_str);
        let id = target.map_or_else(
            || format!("new-{}", self.rng.random::<u32>()),
            str::to_owned,
        );
        let scopes = |rng: &mut StdRng| -> Vec<String> {
            (0..rng.random_range(0..3))
                .map(|_| format!("scope-{}", rng.random_range(1..50)))
                .collect()
        };
        match (route.method, route.route) {
            ("DELETE", "/users/:userId") => (None, Some(Value::Object(user(&id)))),
            ("DELETE", _) => (None, None),
            (_, r) if r.starts_with("/users") => {
                let change = json!({"name": format!("User {id}")});
                (Some(change), Some(Value::Object(user(&id))))
            }
            (_, r) if r.ends_with("/users") => (
                Some(json!({"userIds": [self.user_id(), self.user_id()]})),
                None,
            ),
            ("POST", "/roles") => {
                let body = json!({"name": format!("role {id}"), "scopeIds": scopes(&mut self.rng)});
                (
                    Some(body),
                    Some(json!({"id": id, "name": format!("role {id}")})),
                )
            }
            ("POST", "/organization-roles") => {
                let body = json!({"name": format!("org role {id}"), "organizationScopeIds": scopes(&mut self.rng)});
                (
                    Some(body),
                    Some(json!({"id": id, "name": format!("org role {id}")})),
                )
            }
            (_, r) if r.ends_with("/scopes") && !r.starts_with("/resources") => {
                let ids = scopes(&mut self.rng);
                let assigned: Vec<Value> = ids.iter().map(|s| json!({"id": s})).collect();
                let response = (route.method == "POST").then_some(Value::Array(assigned));
                (Some(json!({"scopeIds": ids})), response)
            }
            _ => {
                let body = json!({"name": format!("name of {id}"), "description": "changed"});
                let mut entity = body.clone();
                entity["id"] = id.into();
                (Some(body), Some(entity))
            }
        }
    }

    fn user_id(&mut self) -> String {
        format!("user-{}", self.rng.random_range(1..USERS))
    }

    fn user_agent(&mut self) -> String {
        (*USER_AGENTS.choose(&mut self.rng).expect("non-empty")).to_owned()
    }

    /// Documentation addresses (RFC 5737): realistic, and nobody's.
    fn ip(&mut self) -> String {
        let net = ["192.0.2", "198.51.100", "203.0.113"].choose(&mut self.rng);
        format!(
            "{}.{}",
            net.expect("non-empty"),
            self.rng.random_range(1..255)
        )
    }
}

/// A route's path and parameters, each `:param` filled with an id numbered `n`.
fn fill(route: &str, n: u32) -> (String, Payload) {
    let resource = route.split('/').nth(1).unwrap_or_default();
    let mut params = Payload::new();
    let segments: Vec<String> = route
        .split('/')
        .map(|segment| match segment.strip_prefix(':') {
            Some("id") => {
                let value = format!("{resource}-{n}");
                params.insert("id".into(), value.clone().into());
                value
            }
            Some(name) => {
                let value = format!("{}-{n}", name.trim_end_matches("Id"));
                params.insert(name.into(), value.clone().into());
                value
            }
            None => segment.to_owned(),
        })
        .collect();
    (segments.join("/"), params)
}

/// What Logto's handler of a method answers when it succeeds.
fn status_of(method: &str) -> u16 {
    match method {
        "POST" => 201,
        "PUT" | "DELETE" => 204,
        _ => 200,
    }
}

/// A user record as an auth service holds it (the password hash never reaches a hook).
fn user(id: &str) -> Payload {
    let user = json!({
        "id": id, "username": id.replace('-', "_"), "primaryEmail": format!("{id}@example.com"),
        "primaryPhone": null, "name": format!("User {id}"), "avatar": null,
        "customData": {}, "identities": {}, "lastSignInAt": 1_764_000_000_000_i64,
        "createdAt": 1_732_400_000_000_i64, "updatedAt": 1_764_000_000_000_i64,
        "profile": {}, "applicationId": "app-web", "isSuspended": false,
        "passwordEncrypted": "$argon2i$v=19$m=4096,t=256,p=1$c2FsdA$aGFzaA"
    });
    user.as_object().cloned().unwrap_or_default()
}

/// What a run did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Report {
    pub sent: u64,
    pub accepted: u64,
    pub events: u64,
    pub refused: u64,
    pub failed: u64,
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} requests: {} accepted ({} events published), {} refused, {} failed",
            self.sent, self.accepted, self.events, self.refused, self.failed
        )
    }
}

/// How one request ended.
enum Outcome {
    Accepted { events: u64 },
    Refused,
    Failed,
}

impl Report {
    fn add(&mut self, outcome: Outcome) {
        match outcome {
            Outcome::Accepted { events } => {
                self.accepted += 1;
                self.events += events;
            }
            Outcome::Refused => self.refused += 1,
            Outcome::Failed => self.failed += 1,
        }
    }
}

/// Sends the traffic, bounded in count, time and concurrency.
pub async fn run(
    args: &SimulateArgs,
    shutdown: CancellationToken,
) -> Result<Report, SimulateError> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()?;
    let base = format!("http://{}", args.producer);
    let token: Arc<str> = args.ingest_token.as_str().into();
    let mut traffic = Traffic::new(args.seed);
    let deadline = Instant::now() + Duration::from_secs(args.duration);
    let mut ticks = tokio::time::interval(Duration::from_secs(1) / args.rate);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let permits = Arc::new(Semaphore::new(IN_FLIGHT));
    let mut in_flight = JoinSet::new();
    let mut report = Report::default();
    for _ in 0..u64::from(args.rate) * args.duration {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = ticks.tick() => {}
        }
        if Instant::now() >= deadline {
            break;
        }
        let permit = permits.clone().acquire_owned().await.expect("never closed");
        let request = traffic.next_request();
        let send = send(client.clone(), base.clone(), token.clone(), request);
        in_flight.spawn(async move {
            let outcome = send.await;
            drop(permit);
            outcome
        });
        report.sent += 1;
        while let Some(done) = in_flight.try_join_next() {
            report.add(done.unwrap_or(Outcome::Failed));
        }
    }
    while let Some(done) = in_flight.join_next().await {
        report.add(done.unwrap_or(Outcome::Failed));
    }
    if report.sent > 0 && report.accepted == 0 {
        return Err(SimulateError::NoneAccepted(report));
    }
    Ok(report)
}

async fn send(client: reqwest::Client, base: String, token: Arc<str>, request: Request) -> Outcome {
    let response = client
        .post(format!("{base}{}", request.path()))
        .bearer_auth(&*token)
        .header("content-type", "application/json")
        .body(request.body())
        .send()
        .await;
    let Ok(response) = response else {
        return Outcome::Failed;
    };
    if response.status() != reqwest::StatusCode::ACCEPTED {
        tracing::warn!(status = %response.status(), path = request.path(), "request refused");
        return Outcome::Refused;
    }
    let body = response.bytes().await.unwrap_or_default();
    let answer: Value = serde_json::from_slice(&body).unwrap_or_default();
    let events = answer["events"].as_array().map_or(0, Vec::len);
    Outcome::Accepted {
        events: events as u64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn the_first_requests_cover_every_route_flow_and_action() {
        let mut traffic = Traffic::new(7);
        let first: Vec<Request> = (0..Traffic::coverage_len())
            .map(|_| traffic.next_request())
            .collect();
        let routes: HashSet<_> = first
            .iter()
            .filter_map(|r| match r {
                Request::ApiCall(c) => Some((c.method.clone(), c.matched_route.clone())),
                Request::Interaction(_) => None,
            })
            .collect();
        assert_eq!(routes.len(), ROUTES.len());
        let interactions: Vec<&Interaction> = first
            .iter()
            .filter_map(|r| match r {
                Request::Interaction(i) => Some(i),
                Request::ApiCall(_) => None,
            })
            .collect();
        for flow in ["Register", "SignIn", "ForgotPassword"] {
            assert!(interactions
                .iter()
                .any(|i| i.interaction_event.as_str() == flow));
        }
        for action in Action::ALL {
            assert!(
                interactions.iter().any(|i| i.actions == [action]),
                "{action:?}"
            );
        }
    }

    #[test]
    fn every_covered_route_emits_its_events_and_the_mix_is_valid() {
        let mut traffic = Traffic::new(3);
        for _ in 0..ROUTES.len() {
            let Request::ApiCall(call) = traffic.next_request() else {
                panic!("routes come first");
            };
            assert!(
                !call.events().is_empty(),
                "{} {}",
                call.method,
                call.matched_route
            );
        }
        for _ in 0..2_000 {
            let request = traffic.next_request();
            let body = request.body();
            match request {
                Request::ApiCall(_) => {
                    serde_json::from_slice::<ApiCall>(&body).unwrap();
                }
                Request::Interaction(_) => {
                    serde_json::from_slice::<Interaction>(&body).unwrap();
                }
            }
        }
    }

    #[test]
    fn the_same_seed_sends_the_same_traffic() {
        let run = |seed| {
            let mut t = Traffic::new(seed);
            (0..100).map(|_| t.next_request()).collect::<Vec<_>>()
        };
        assert_eq!(run(5), run(5));
        assert_ne!(run(5), run(6));
    }

    #[test]
    fn routes_are_filled_with_their_parameters() {
        let (path, params) = fill("/roles/:id/scopes/:scopeId", 4);
        assert_eq!(path, "/roles/roles-4/scopes/scope-4");
        assert_eq!(
            Value::Object(params),
            json!({"id": "roles-4", "scopeId": "scope-4"})
        );
        assert_eq!(fill("/users", 1).0, "/users");
    }
}
