//! A real HTTP receiver on loopback that records every delivery and verifies it as a
//! Logto or Standard Webhooks receiver would. Its answer can be scripted (a status sequence,
//! a delay), and changed while a test runs. Waiting on it fails loudly: [`Receiver::wait_for`]
//! panics with what arrived when the deliveries awaited do not.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use tokio::sync::Notify;

use crate::wait::POLL;

/// One request as the receiver saw it.
#[derive(Debug, Clone)]
pub struct Received {
    pub path: String,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub at: Instant,
}

impl Received {
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("a delivery body is JSON")
    }

    /// Checks both signatures against the raw body, as receivers do.
    pub fn verify(&self, signing_key: &str) -> Result<(), String> {
        verify_logto(
            signing_key,
            &self.body,
            self.header("logto-signature-sha-256"),
        )?;
        verify_standard(
            signing_key,
            self.header("webhook-id"),
            self.header("webhook-timestamp"),
            &self.body,
            self.header("webhook-signature"),
        )
    }
}

/// Logto's check: hex HMAC-SHA256 of the body with the signing key.
pub fn verify_logto(signing_key: &str, body: &[u8], signature: &str) -> Result<(), String> {
    let mut mac = Hmac::<Sha256>::new_from_slice(signing_key.as_bytes()).expect("any key");
    mac.update(body);
    let expected = hex::encode(mac.finalize().into_bytes());
    (expected == signature)
        .then_some(())
        .ok_or_else(|| format!("logto signature mismatch: {signature}"))
}

/// The Standard Webhooks check, written from the spec: the secret `whsec_<base64>` decodes
/// to the key bytes; any `v1,` entry of the space-separated header may match.
pub fn verify_standard(
    signing_key: &str,
    id: &str,
    timestamp: &str,
    body: &[u8],
    header: &str,
) -> Result<(), String> {
    let secret = format!("whsec_{}", BASE64.encode(signing_key.as_bytes()));
    let key = BASE64
        .decode(secret.trim_start_matches("whsec_"))
        .map_err(|e| e.to_string())?;
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).expect("any key");
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body);
    let expected = format!("v1,{}", BASE64.encode(mac.finalize().into_bytes()));
    if id.is_empty() || timestamp.parse::<i64>().is_err() {
        return Err("webhook-id or webhook-timestamp missing".into());
    }
    header
        .split(' ')
        .any(|s| s == expected)
        .then_some(())
        .ok_or_else(|| format!("standard webhooks signature mismatch: {header}"))
}

#[derive(Default)]
struct Script {
    statuses: VecDeque<u16>,
    default_status: Option<u16>,
    delay: Duration,
    extra_headers: Vec<(String, String)>,
    body: String,
}

#[derive(Clone, Default)]
struct Shared {
    received: Arc<Mutex<Vec<Received>>>,
    script: Arc<Mutex<Script>>,
    notify: Arc<Notify>,
}

pub struct Receiver {
    pub addr: SocketAddr,
    shared: Shared,
    task: tokio::task::JoinHandle<()>,
}

impl Receiver {
    /// Starts on a free loopback port; answers 204 unless scripted otherwise.
    pub async fn start() -> Receiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a free port");
        let addr = listener.local_addr().unwrap();
        let shared = Shared::default();
        let app = Router::new()
            .route("/{*path}", post(record))
            .route("/", post(record_root))
            .with_state(shared.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Receiver { addr, shared, task }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}/{}", self.addr, path.trim_start_matches('/'))
    }

    /// The next answers, in order; then the default.
    pub fn script(&self, statuses: &[u16]) {
        self.shared.script.lock().unwrap().statuses.extend(statuses);
    }

    pub fn set_status(&self, status: u16) {
        self.shared.script.lock().unwrap().default_status = Some(status);
    }

    pub fn set_delay(&self, delay: Duration) {
        self.shared.script.lock().unwrap().delay = delay;
    }

    /// The body of every answer from now on (empty by default).
    pub fn set_body(&self, body: &str) {
        self.shared.script.lock().unwrap().body = body.into();
    }

    pub fn add_response_header(&self, name: &str, value: &str) {
        self.shared
            .script
            .lock()
            .unwrap()
            .extra_headers
            .push((name.into(), value.into()));
    }

    pub fn received(&self) -> Vec<Received> {
        self.shared.received.lock().unwrap().clone()
    }

    /// How many of `ids` have not arrived (as `webhook-id`) within `timeout`: 0 as soon as
    /// all have, else the count at the deadline, for the caller to assert on.
    pub async fn missing(
        &self,
        ids: &std::collections::HashSet<String>,
        timeout: Duration,
    ) -> usize {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let missing = ids.difference(&self.webhook_ids()).count();
            if missing == 0 || tokio::time::Instant::now() >= deadline {
                return missing;
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// The `webhook-id` of every request so far.
    pub fn webhook_ids(&self) -> std::collections::HashSet<String> {
        self.received()
            .iter()
            .map(|r| r.header("webhook-id").to_owned())
            .collect()
    }

    /// Waits until at least `n` requests arrived and returns them all; fails the test after
    /// `timeout`, saying how many arrived and what they were.
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> Vec<Received> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.shared.notify.notified();
            let got = self.received();
            if got.len() >= n {
                return got;
            }
            if tokio::time::Instant::now() >= deadline {
                let seen: Vec<String> = got
                    .iter()
                    .map(|r| format!("/{} {}", r.path, r.header("webhook-id")))
                    .collect();
                panic!(
                    "waited {timeout:?} for {n} requests at {}; {} arrived: {seen:?}",
                    self.addr,
                    got.len()
                );
            }
            let _ = tokio::time::timeout_at(deadline, notified).await;
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A scripted answer: status, extra headers, body.
type Answer = (StatusCode, HeaderMap, String);

async fn record_root(state: State<Shared>, headers: HeaderMap, body: Bytes) -> Answer {
    answer(state.0, String::new(), headers, body).await
}

async fn record(
    state: State<Shared>,
    Path(path): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Answer {
    answer(state.0, path, headers, body).await
}

async fn answer(shared: Shared, path: String, headers: HeaderMap, body: Bytes) -> Answer {
    let (status, delay, extra, answer_body) = {
        let mut script = shared.script.lock().unwrap();
        let status = script
            .statuses
            .pop_front()
            .or(script.default_status)
            .unwrap_or(204);
        (
            status,
            script.delay,
            script.extra_headers.clone(),
            script.body.clone(),
        )
    };
    shared.received.lock().unwrap().push(Received {
        path,
        headers,
        body,
        at: Instant::now(),
    });
    shared.notify.notify_waiters();
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let mut out = HeaderMap::new();
    for (n, v) in extra {
        out.insert(
            axum::http::HeaderName::try_from(n).unwrap(),
            v.parse().unwrap(),
        );
    }
    (StatusCode::from_u16(status).unwrap(), out, answer_body)
}
