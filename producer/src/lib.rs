//! hookbus producer: how auth services hand their domain events to hookbus.
//!
//! Built with `default-features = false` it is the SDK alone (the first four modules below,
//! on lapin and tokio); the `server` feature (on by default) adds the process.
//!
//! - [`route_table`]: the Management API routes and the events they emit (data).
//! - [`api_call`], [`interaction`]: what an auth service reports, and the events and Logto
//!   payloads it makes (pure).
//! - [`publisher`]: the Rust SDK (`publish_event`, `publish_api_call`,
//!   `publish_interaction`), confirm before returning.
//! - [`ingest`]: the HTTP ingest API for every other language; [`openapi`]: its document. [`idempotency`]: its
//!   `Idempotency-Key`, in Redis.
//! - [`server`]: the `producer` process: ingest API plus `/healthz`, `/readyz`, `/metrics`.
//! - [`simulate`]: `producer simulate`, mixed auth traffic through the ingest API.

pub mod api_call;
pub mod interaction;
pub mod publisher;
pub mod route_table;

#[cfg(feature = "server")]
pub mod idempotency;
#[cfg(feature = "server")]
pub mod ingest;
#[cfg(feature = "server")]
pub mod metrics;
#[cfg(feature = "server")]
pub mod openapi;
#[cfg(feature = "server")]
pub mod server;
#[cfg(feature = "server")]
pub mod simulate;

#[cfg(feature = "server")]
pub use server::{run, Config, RunError};

pub use api_call::{ApiCall, MembershipDelta};
pub use interaction::{Action, Interaction, InteractionEvent};
pub use publisher::{LinkState, Published, Publisher};
