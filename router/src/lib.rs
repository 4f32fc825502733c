//! hookbus router: fans each event out to the per-hook queues of the hooks that want it.
//!
//! - [`consume`]: consume → decide → publish → settle, with the connection supervisor.
//! - [`plan`]: the pure routing decision.
//! - [`api`]: the admin API (`/api/hooks`).
//! - [`run`]: the `router` process: routing, admin API, `/healthz`, `/readyz`, `/metrics`.

pub mod api;
pub mod consume;
pub mod metrics;
pub mod plan;

use std::sync::Arc;

use hookbus_contracts::config::CommonConfig;
use hookbus_contracts::ops::{self, Readiness};
use hookbus_contracts::store::{self, HookCache, HookStore, StoreError};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

#[derive(clap::Parser, Debug, Clone)]
#[command(
    name = "router",
    about = "hookbus router: events to per-hook queues, and the hooks admin API"
)]
pub struct Config {
    #[command(flatten)]
    pub common: CommonConfig,
    /// Address of the admin API, /healthz and /metrics.
    #[arg(long, env = "HOOKBUS_ROUTER_LISTEN", default_value = "127.0.0.1:7802")]
    pub listen: String,
    /// Bearer token of the admin API.
    #[arg(long, env = "HOOKBUS_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    /// Events routed concurrently (the events channel's prefetch).
    #[arg(long, env = "HOOKBUS_ROUTER_PREFETCH", default_value_t = 256)]
    pub prefetch: u16,
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("HOOKBUS_ADMIN_TOKEN is not set: the admin API would be open to anyone")]
    NoToken,
    #[error("hook store: {0}")]
    Store(#[from] StoreError),
    #[error("serving HTTP: {0}")]
    Http(#[from] std::io::Error),
}

/// Runs the router until `shutdown` fires; in-flight events are settled before it returns.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> Result<(), RunError> {
    let token: Arc<str> = config
        .admin_token
        .filter(|t| !t.is_empty())
        .ok_or(RunError::NoToken)?
        .into();
    let readiness = Readiness::default();
    let store = HookStore::new(&config.common.redis_url, config.common.redis_keys())?;
    let cache = HookCache::default();
    let metrics = metrics::Metrics::new();
    tokio::spawn(store::refresh(
        store.clone(),
        cache.clone(),
        readiness.flag("redis"),
        shutdown.clone(),
    ));
    tokio::spawn(export_cache_metrics(cache.clone(), metrics.clone()));

    let admin_cache = cache.clone();
    let ctx = Arc::new(consume::RouterCtx {
        topology: config.common.topology(),
        cache: cache.clone(),
        metrics: metrics.clone(),
        prefetch: config.prefetch.max(1),
    });
    let consuming = readiness.flag("consuming");
    let routing = tokio::spawn({
        let (shutdown, amqp_url) = (shutdown.clone(), config.common.amqp_url.clone());
        async move {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = cache.loaded() => {}
            }
            consume::supervise(amqp_url, ctx, consuming, shutdown).await;
        }
    });

    let admin = api::AdminState {
        store,
        cache: admin_cache,
        policy: config.common.target_policy(),
    };
    let app = ops::routes(metrics.registry.clone(), readiness).merge(api::routes(admin, token));
    tracing::info!(addr = %listener.local_addr()?, "router listening");
    ops::serve(listener, app, shutdown).await?;
    let _ = routing.await;
    Ok(())
}

async fn export_cache_metrics(cache: HookCache, metrics: metrics::Metrics) {
    let mut changes = cache.subscribe();
    while changes.changed().await.is_ok() {
        let snapshot = cache.snapshot();
        metrics.hooks.set(snapshot.hooks().count() as i64);
        metrics
            .cache_loaded
            .set((hookbus_contracts::payload::now_ms() / 1000) as i64);
    }
}
