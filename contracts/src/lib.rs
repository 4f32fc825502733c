//! hookbus-contracts: what the producer, router and deliverer agree on.
//!
//! - [`catalogue`]: the event names (data, one place).
//! - [`ids`]: `EventId`, `HookId`, `SigningKey` as types.
//! - [`event`], [`delivery`]: the wire messages; [`wire`]: their version envelope.
//! - [`payload`]: Logto payload order and rendering; [`signature`]: both signature schemes.
//! - [`hook`]: the hook model, Logto's matching rule, validation; [`target`]: the SSRF guard.
//! - [`topology`]: AMQP names and declarations; [`keys`]: Redis keys.
//! - [`broker`]: confirmed publishing; [`backoff`]: waiting after a refused step; [`store`]: hooks in Redis and the routing cache;
//!   [`logs`]: delivery logs and execution stats.
//! - [`config`], [`ops`], [`http`]: settings, `/healthz` `/readyz` `/metrics`, API conventions.

pub mod backoff;
pub mod broker;
pub mod catalogue;
pub mod config;
pub mod delivery;
pub mod event;
pub mod hook;
pub mod http;
pub mod ids;
pub mod keys;
pub mod logs;
pub mod ops;
pub mod payload;
pub mod signature;
pub mod store;
pub mod target;
pub mod topology;
pub mod wire;

pub use catalogue::{EventKind, EventName};
pub use delivery::Delivery;
pub use event::Event;
pub use hook::Hook;
pub use ids::{EventId, HookId, SigningKey};
