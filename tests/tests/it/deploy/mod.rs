//! The deploy/ files, held to the binaries they deploy. No container engine runs here, so
//! deploy/compose.yaml, deploy/k8s/, deploy/Dockerfile, deploy/prometheus/, deploy/grafana/
//! and deploy/rabbitmq/ are read and checked instead of run:
//!
//! - every environment variable set for a process is one its clap definition accepts
//!   (`Config::command()`), and what it needs is set;
//! - listen addresses, container ports, probes, Services, healthchecks and scrape targets
//!   agree with each other and with the binaries' ports; the probe paths are the ones
//!   `hookbus_runtime::ops::routes` serves;
//! - termination grace outlasts the drain deadline;
//! - KEDA scales the deliverer Deployment on exactly the per-hook queues;
//! - RabbitMQ policies are data, cover the hook queues, and drop nothing;
//! - every metric the dashboard and the alert rules query is in [`metrics::METRICS`], the names the
//!   processes export, and the dashboard has the panels operators need;
//! - `promtool` validates the Prometheus files (deploy/tools.sh installs it; without it the
//!   check is skipped, or fails when CI=true);
//! - the test command's last line says what happened: the totals, a failed build, or that
//!   no test ran (with a stand-in `cargo`);
//! - the demo's closing report has what the README's examples need.
//!
//! One module per thing checked; `binaries`, `files` and `metrics` hold what they share.

mod binaries;
mod compose;
mod dashboards;
mod files;
mod kubernetes;
mod metrics;
mod processes;
mod prometheus;
mod rabbitmq;
mod scripts;

/// The probe and scrape paths every process serves (`hookbus_runtime::ops::routes`).
const HEALTHZ: &str = "/healthz";
const READYZ: &str = "/readyz";
const METRICS_PATH: &str = "/metrics";
