//! What every process exposes to operators: `/healthz`, `/readyz`, `/metrics`, and logs.
//!
//! `/healthz` answers 200 while the process runs. `/readyz` answers 200 only when every
//! dependency the process registered ([`Readiness::flag`]) is up, and 503 with the list
//! otherwise, so an orchestrator stops sending work to a process that cannot do it.

use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use prometheus::{Encoder, Registry, TextEncoder};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::health::Readiness;
use crate::http;

/// The routes every process serves; services merge their own API into it.
pub fn routes(registry: Registry, readiness: Readiness) -> Router {
    let metrics_readiness = readiness.clone();
    Router::new()
        .route(
            "/healthz",
            get(|| async { Json(serde_json::json!({"status": "ok"})) }),
        )
        .route(
            "/readyz",
            get(move || {
                let readiness = readiness.clone();
                async move {
                    let state: serde_json::Map<_, _> = readiness
                        .state()
                        .into_iter()
                        .map(|(n, up)| (n.to_owned(), up.into()))
                        .collect();
                    let status = if readiness.is_ready() {
                        StatusCode::OK
                    } else {
                        StatusCode::SERVICE_UNAVAILABLE
                    };
                    (status, Json(serde_json::Value::Object(state)))
                }
            }),
        )
        .route(
            "/metrics",
            get(move || {
                let (registry, readiness) = (registry.clone(), metrics_readiness.clone());
                async move {
                    let mut buf = Vec::new();
                    let encoder = TextEncoder::new();
                    match encoder.encode(&registry.gather(), &mut buf) {
                        Ok(()) => {
                            buf.extend_from_slice(readiness_gauges(&readiness).as_bytes());
                            (
                                [(header::CONTENT_TYPE, encoder.format_type().to_owned())],
                                buf,
                            )
                                .into_response()
                        }
                        Err(err) => {
                            (StatusCode::INTERNAL_SERVER_ERROR, err.to_string()).into_response()
                        }
                    }
                }
            }),
        )
}

/// Each readiness condition as a 0/1 gauge.
fn readiness_gauges(readiness: &Readiness) -> String {
    let mut text = String::new();
    for (flag, up) in readiness.state() {
        let name = hookbus_contracts::metric_names::readiness_gauge(flag);
        text.push_str(&format!(
            "# HELP {name} 1 while the `{flag}` readiness condition holds\n# TYPE {name} gauge\n{name} {}\n",
            u8::from(up)
        ));
    }
    text
}

/// Serves `app` until `shutdown`, then lets in-flight requests finish. Every error answer
/// has a JSON body, routing errors included ([`http::json_routing_errors`]).
pub async fn serve(
    listener: TcpListener,
    app: Router,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let app = app.layer(axum::middleware::map_response(http::json_routing_errors));
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
}

/// Serves `app` while `work` runs, and until it has finished: on SIGTERM a process keeps
/// answering `/healthz`, `/readyz` (now 503) and `/metrics` while it drains.
pub async fn serve_during(
    listener: TcpListener,
    app: Router,
    work: tokio::task::JoinHandle<()>,
) -> std::io::Result<()> {
    let stop = CancellationToken::new();
    let server = tokio::spawn(serve(listener, app, stop.clone()));
    let _ = work.await;
    stop.cancel();
    server.await.unwrap_or(Ok(()))
}

/// Structured logs on stderr: `RUST_LOG` filters (default `info`); `HOOKBUS_LOG_FORMAT=json`
/// for JSON lines. Call once, from `main`.
///
/// Stderr, so that what an operator command prints on stdout (`router dead-letters list`)
/// can be piped without log lines in it; colours only on a terminal, so that log files and
/// collectors get plain text.
pub fn init_tracing() {
    use std::io::IsTerminal;
    use tracing_subscriber::EnvFilter;
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,lapin=warn"));
    let json = std::env::var("HOOKBUS_LOG_FORMAT").is_ok_and(|v| v == "json");
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// A token cancelled on SIGTERM or Ctrl-C: what each `main` passes to its service's `run`.
pub fn shutdown_on_signal() -> CancellationToken {
    let token = CancellationToken::new();
    let cancel = token.clone();
    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::info!("shutdown requested");
        cancel.cancel();
    });
    token
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler installs");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
