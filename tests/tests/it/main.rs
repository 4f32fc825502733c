//! hookbus's integration tests, in one binary so that the workspace is linked once for all
//! of them rather than once per file: one module per area, each against the real RabbitMQ
//! and Redis (a prefix of its own per test). `cargo test -p hookbus-tests --test it AREA::`
//! runs one area. The signing-key test (`tests/tests/secrets.rs`) stays a binary of its own:
//! it installs a process-wide log subscriber.

mod activity;
mod chaos;
mod cluster;
mod console;
mod crash;
mod delivery_logs;
mod deploy;
mod event_sources;
mod hook_store;
mod hooks_api;
mod hostile;
mod kit;
mod logto_script;
mod openapi;
mod operations;
mod reliability;
mod retries;
mod spine;
mod tracing;
