//! Test support for hookbus's integration tests (in `tests/tests/`) and the demo: a real
//! HTTP receiver that verifies signatures, and a whole pipeline started in-process under a
//! prefix of its own, or one service in a process of its own ([`service`]). Nothing here is
//! a mock: every test talks to the real RabbitMQ and Redis, and to real HTTP endpoints on
//! loopback. Tests wait for signals, never for time ([`wait`]), and leave nothing behind
//! under their prefix even when they fail ([`cleanup`]). [`collector`] receives the traces
//! services export over OTLP.

pub mod chaos;
pub mod cleanup;
pub mod cluster;
pub mod collector;
pub mod pipeline;
pub mod receiver;
pub mod servers;
pub mod service;
pub mod tools;
pub mod wait;

pub use cleanup::Cleanup;
pub use pipeline::Pipeline;
pub use receiver::{Received, Receiver};
pub use wait::{check, eventually};
