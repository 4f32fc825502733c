//! `hookbus-demo`: the pieces of the README's demo that are not hookbus itself.
//!
//! - `receive`: a webhook receiver, as a subscriber would write one, that verifies both
//!   `logto-signature-sha-256` and the Standard Webhooks `webhook-signature`, dedupes on
//!   `webhook-id`, prints each delivery and serves its counts at `GET /stats`.
//! - `events`: prints the event catalogue, one name a line.
//! - `reset`: deletes every queue, exchange and Redis key of a prefix.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use clap::{Parser, Subcommand};
use hookbus_contracts::EventName;
use hookbus_runtime::config::parse_schedule;
use hookbus_tests::receiver::{verify_logto, verify_standard};

// The services' allocator, as in their own binaries.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "hookbus-demo")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Receive webhooks and verify them.
    Receive {
        #[arg(long, default_value = "127.0.0.1:7900")]
        listen: String,
        /// The hook's signing key (as the hooks API returned it).
        #[arg(long, env = "HOOKBUS_DEMO_SIGNING_KEY", hide_env_values = true)]
        signing_key: String,
    },
    /// Print the event catalogue.
    Events,
    /// Delete every queue, exchange and Redis key of the prefix.
    Reset {
        #[arg(long, env = "HOOKBUS_PREFIX")]
        prefix: String,
        #[arg(
            long,
            env = "HOOKBUS_RETRY_SCHEDULE",
            default_value = "5s,30s,2m,10m,30m,1h,3h,6h,12h,24h"
        )]
        retry_schedule: String,
    },
}

#[derive(Default)]
struct Stats {
    received: u64,
    verified: u64,
    duplicates: u64,
    by_event: BTreeMap<String, u64>,
    seen: HashSet<String>,
}

struct Receiver {
    key: String,
    stats: Mutex<Stats>,
}

#[tokio::main]
async fn main() {
    match Cli::parse().command {
        Command::Events => EventName::all().for_each(|e| println!("{e}")),
        Command::Reset {
            prefix,
            retry_schedule,
        } => {
            let schedule = parse_schedule(&retry_schedule).expect("a valid schedule");
            hookbus_tests::pipeline::cleanup(&prefix, &schedule).await;
        }
        Command::Receive {
            listen,
            signing_key,
        } => receive(&listen, signing_key).await,
    }
}

async fn receive(listen: &str, key: String) {
    let state = Arc::new(Receiver {
        key,
        stats: Mutex::default(),
    });
    let app = Router::new()
        .route("/webhook", post(webhook))
        .route("/stats", get(stats))
        .with_state(state);
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .expect("bind the receiver");
    println!("demo receiver listening on http://{listen}/webhook");
    axum::serve(listener, app).await.expect("serve");
}

async fn webhook(State(r): State<Arc<Receiver>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let h = |n: &str| {
        headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    let logto = verify_logto(&r.key, &body, &h("logto-signature-sha-256"));
    let standard = verify_standard(
        &r.key,
        &h("webhook-id"),
        &h("webhook-timestamp"),
        &body,
        &h("webhook-signature"),
    );
    let event = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v["event"].as_str().map(str::to_owned))
        .unwrap_or_else(|| "?".into());
    let mark = |ok: bool| if ok { "ok" } else { "FAILED" };
    let mut s = r.stats.lock().unwrap();
    s.received += 1;
    let fresh = s.seen.insert(h("webhook-id"));
    if !fresh {
        s.duplicates += 1;
    }
    if logto.is_ok() && standard.is_ok() {
        s.verified += 1;
        *s.by_event.entry(event.clone()).or_default() += 1;
    }
    println!(
        "#{:<4} {:<34} webhook-id={} logto-signature-sha-256:{} webhook-signature:{}{}",
        s.received,
        event,
        h("webhook-id"),
        mark(logto.is_ok()),
        mark(standard.is_ok()),
        if fresh { "" } else { " (duplicate)" }
    );
    if logto.is_ok() && standard.is_ok() {
        StatusCode::NO_CONTENT
    } else {
        StatusCode::UNAUTHORIZED
    }
}

async fn stats(State(r): State<Arc<Receiver>>) -> Json<serde_json::Value> {
    let s = r.stats.lock().unwrap();
    Json(serde_json::json!({
        "received": s.received, "verified": s.verified, "duplicates": s.duplicates, "byEvent": s.by_event
    }))
}
