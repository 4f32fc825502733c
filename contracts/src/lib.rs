//! hookbus-contracts: what the producer, router and deliverer agree on, as pure data and
//! pure decisions (no async runtime, no broker, Redis or HTTP stack: every process and the
//! SDK can depend on it, and every rule in it is unit-tested).
//!
//! - [`catalogue`]: the event names (data, one place).
//! - [`ids`]: `EventId`, `HookId`, `SigningKey` as types.
//! - [`event`], [`delivery`]: the wire messages; [`wire`]: their version envelope.
//! - [`payload`]: Logto payload order and rendering; [`signature`]: both signature schemes
//!   and every signature header name.
//! - [`hook`]: the hook model, Logto's matching rule, validation; [`target`]: the SSRF rule.
//! - [`snapshot`]: the hooks indexed for routing, and when a store's answer replaces them.
//! - [`topology`]: AMQP names and dead-letter headers; [`keys`]: Redis keys;
//!   [`metric_names`]: every exported metric's name.
//! - [`activity`]: which hooks are active, and when an idle hook's queue may go.
//! - [`backoff`]: waiting after a refused step; [`logs`]: delivery log records;
//!   [`overview`]: activity, durations, queue readings and presence for the console.

pub mod activity;
pub mod backoff;
pub mod catalogue;
pub mod delivery;
pub mod event;
pub mod hook;
pub mod ids;
pub mod keys;
pub mod logs;
pub mod metric_names;
pub mod overview;
pub mod owners;
pub mod payload;
pub mod signature;
pub mod snapshot;
pub mod target;
pub mod topology;
pub mod wire;

pub use catalogue::{EventKind, EventName};
pub use delivery::Delivery;
pub use event::Event;
pub use hook::Hook;
pub use ids::{EventId, HookId, SigningKey};
