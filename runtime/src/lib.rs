//! hookbus-runtime: the plumbing the services share, so that each service's own code is
//! only its step of the flow.
//!
//! Always built (the SDK an auth service embeds needs only these):
//! - [`broker`]: connecting, the one reconnect supervisor, confirmed publishing;
//!   [`declare`]: declaring the topology the contracts name; [`health`]: readiness flags.
//!
//! With the `service` feature (the processes):
//! - [`store`]: hooks in Redis and the cache every process routes by; [`activity`]: which
//!   hooks are active (their queues exist and are consumed); [`logs`]: delivery
//!   logs and stats in Redis; [`overview`]: activity, queue readings and presence for the
//!   console.
//! - [`config`]: settings from the environment; [`ops`]: `/healthz`, `/readyz`, `/metrics`,
//!   logs and signals; [`http`]: API conventions (errors, bearer tokens); [`metrics`]: the
//!   one way to register a metric.
//!
//! Tracing: [`trace_context`] (always built, dependency-free) carries a W3C trace context
//! in message headers; [`telemetry`] (`service`) records spans and exports them over OTLP.

pub mod broker;
pub mod declare;
pub mod health;
pub mod trace_context;

#[cfg(feature = "service")]
pub mod activity;
#[cfg(feature = "service")]
pub mod config;
#[cfg(feature = "service")]
pub mod http;
#[cfg(feature = "service")]
pub mod logs;
#[cfg(feature = "service")]
pub mod metrics;
#[cfg(feature = "service")]
pub mod ops;
#[cfg(feature = "service")]
pub mod overview;
#[cfg(feature = "service")]
pub mod store;
#[cfg(feature = "service")]
pub mod telemetry;
