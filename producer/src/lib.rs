//! hookbus producer: how auth services hand their domain events to hookbus.
//!
//! - [`route_table`]: the Management API routes and the events they emit (data).
//! - [`api_call`], [`interaction`]: what an auth service reports, and the events and Logto
//!   payloads it makes (pure).
//! - [`publisher`]: the Rust SDK (`publish_event`, `publish_api_call`,
//!   `publish_interaction`), confirm before returning.
//! - [`ingest`]: the HTTP ingest API for every other language; [`openapi`]: its document. [`idempotency`]: its
//!   `Idempotency-Key`, in Redis.
//! - [`run`]: the `producer` process: ingest API plus `/healthz`, `/readyz`, `/metrics`.
//! - [`simulate`]: `producer simulate`, mixed auth traffic through the ingest API.

pub mod api_call;
pub mod idempotency;
pub mod ingest;
pub mod interaction;
pub mod metrics;
pub mod openapi;
pub mod publisher;
pub mod route_table;
pub mod simulate;

use std::sync::Arc;

use hookbus_contracts::config::CommonConfig;
use hookbus_contracts::ops::{self, Readiness};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use api_call::{ApiCall, MembershipDelta};
pub use interaction::{Action, Interaction, InteractionEvent};
pub use publisher::{Published, Publisher};

#[derive(clap::Parser, Debug, Clone)]
#[command(
    name = "producer",
    about = "hookbus ingest API: auth services publish events here"
)]
pub struct Config {
    #[command(flatten)]
    pub common: CommonConfig,
    /// Address of the ingest API, /healthz and /metrics.
    #[arg(
        long,
        env = "HOOKBUS_PRODUCER_LISTEN",
        default_value = "127.0.0.1:7801"
    )]
    pub listen: String,
    /// Bearer token callers of the ingest API must present.
    #[arg(long, env = "HOOKBUS_INGEST_TOKEN", hide_env_values = true)]
    pub ingest_token: Option<String>,
    /// Largest accepted request body, in bytes.
    #[arg(long, env = "HOOKBUS_MAX_EVENT_BYTES", default_value_t = 256 * 1024)]
    pub max_event_bytes: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("HOOKBUS_INGEST_TOKEN is not set: the ingest API would be open to anyone")]
    NoToken,
    #[error("Redis URL: {0}")]
    Redis(#[from] deadpool_redis::CreatePoolError),
    #[error("serving HTTP: {0}")]
    Http(#[from] std::io::Error),
}

/// Runs the producer until `shutdown` fires.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> Result<(), RunError> {
    let token: Arc<str> = config
        .ingest_token
        .filter(|t| !t.is_empty())
        .ok_or(RunError::NoToken)?
        .into();
    let readiness = Readiness::default();
    let publisher = Publisher::new(
        &config.common.amqp_url,
        config.common.topology(),
        readiness.flag("rabbitmq"),
    );
    if let Err(err) = publisher.ensure_connected().await {
        tracing::warn!(error = %err, "RabbitMQ not reachable yet; ingest answers 503 until it is");
    }
    // Redis holds idempotency keys only: it is not a readiness condition, since requests
    // without a key are served while it is down.
    let idempotency =
        idempotency::Idempotency::new(&config.common.redis_url, config.common.redis_keys())?;
    let metrics = metrics::Metrics::new();
    let state = ingest::IngestState {
        publisher,
        metrics: metrics.clone(),
        idempotency,
    };
    let app = ops::routes(metrics.registry.clone(), readiness).merge(ingest::routes(
        state,
        token,
        config.max_event_bytes,
    ));
    tracing::info!(addr = %listener.local_addr()?, "producer listening");
    ops::serve(listener, app, shutdown).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn help_offers_only_what_the_producer_reads() {
        let help = Config::command().render_long_help().to_string();
        for flag in ["--allow-http", "--allow-private-targets"] {
            assert!(!help.contains(flag), "`producer --help` offers {flag}");
        }
        for flag in ["--ingest-token", "--prefix", "--listen"] {
            assert!(help.contains(flag), "`producer --help` lacks {flag}");
        }
    }
}
