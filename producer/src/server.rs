//! The `producer` process: the ingest API plus `/healthz`, `/readyz`, `/metrics`, with the
//! watch that keeps its readiness true to the broker link.

use std::sync::Arc;

use hookbus_runtime::config::CommonConfig;
use hookbus_runtime::health::{Flag, Readiness};
use hookbus_runtime::ops;
use hookbus_runtime::telemetry::{Telemetry, TelemetryConfig, TelemetryError};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::publisher::{self, Publisher};
use crate::{idempotency, ingest, metrics};

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
    /// How long a request waits for RabbitMQ's confirm before answering 503 (Retry-After).
    #[arg(long, env = "HOOKBUS_PUBLISH_TIMEOUT", default_value = "5s",
          value_parser = hookbus_runtime::config::parse_duration)]
    pub publish_timeout: std::time::Duration,
    #[command(flatten)]
    pub telemetry: TelemetryConfig,
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("HOOKBUS_INGEST_TOKEN is not set: the ingest API would be open to anyone")]
    NoToken,
    #[error("Redis URL: {0}")]
    Redis(#[from] deadpool_redis::CreatePoolError),
    #[error("serving HTTP: {0}")]
    Http(#[from] std::io::Error),
    #[error(transparent)]
    Telemetry(#[from] TelemetryError),
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
        Flag::default(),
    )
    .with_timeout(config.publish_timeout);
    if let Err(err) = publisher.ensure_connected().await {
        tracing::warn!(error = %err, "RabbitMQ not reachable yet; ingest answers 503 until it is");
    }
    // Redis holds idempotency keys only: it is not a readiness condition, since requests
    // without a key are served while it is down.
    let idempotency =
        idempotency::Idempotency::new(&config.common.redis_url, config.common.redis_keys())?;
    let metrics = metrics::Metrics::new();
    let telemetry = Telemetry::start(&config.telemetry, "hookbus-producer", &metrics.registry)?;
    let tasks = tokio_util::task::TaskTracker::new();
    tasks.spawn(hookbus_runtime::overview::announce(
        idempotency.pool().clone(),
        config.common.redis_keys(),
        "producer",
        readiness.clone(),
        shutdown.clone(),
    ));
    let state = ingest::IngestState {
        publisher: publisher.clone(),
        metrics: metrics.clone(),
        idempotency,
        publish_timeout: config.publish_timeout,
        tasks: tasks.clone(),
        tracing: telemetry.tracing.clone(),
    };
    let watching = tokio::spawn(watch_broker(
        publisher,
        readiness.flag("rabbitmq"),
        shutdown.clone(),
    ));
    let app = ops::routes(metrics.registry.clone(), readiness).merge(ingest::routes(
        state,
        token,
        config.max_event_bytes,
    ));
    tracing::info!(addr = %listener.local_addr()?, "producer listening");
    ops::serve(listener, app, shutdown).await?;
    tasks.close();
    tasks.wait().await;
    let _ = watching.await;
    telemetry.shutdown().await;
    Ok(())
}

/// Keeps the `rabbitmq` readiness condition true only while the link is up and RabbitMQ is
/// not blocking publishers (a blocked broker fails `/readyz` within a tenth of a second), and
/// reconnects a link that went down, so that an idle producer becomes ready again by itself.
async fn watch_broker(publisher: Publisher, ready: Flag, shutdown: CancellationToken) {
    let mut wait = std::time::Duration::from_millis(100);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
        let mut state = publisher.link_state().await;
        if state == publisher::LinkState::Down && publisher.ensure_connected().await.is_ok() {
            state = publisher.link_state().await;
        }
        ready.set(state == publisher::LinkState::Ready);
        // Reconnect attempts slow down while the broker is away.
        wait = if state == publisher::LinkState::Down {
            (wait * 2).min(std::time::Duration::from_secs(2))
        } else {
            std::time::Duration::from_millis(100)
        };
    }
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
