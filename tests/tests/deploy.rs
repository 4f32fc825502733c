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
//! - every metric the dashboard and the alert rules query is in [`METRICS`], the names the
//!   processes export, and the dashboard has the panels operators need;
//! - `promtool` validates the Prometheus files when it is installed (skipped otherwise);
//! - the test command's last line says what happened: the totals, a failed build, or that
//!   no test ran (with a stand-in `cargo`);
//! - the demo's closing report has what the README's examples need.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::CommandFactory;
use hookbus_contracts::topology::Topology;
use hookbus_contracts::HookId;
use hookbus_runtime::config::{parse_duration, parse_schedule};
use hookbus_runtime::health::Readiness;
use hookbus_runtime::ops;
use regex::Regex;
use serde::Deserialize;
use serde_yaml::Value;

const HEALTHZ: &str = "/healthz";
const READYZ: &str = "/readyz";
const METRICS_PATH: &str = "/metrics";
const DRAIN_DEADLINE_ENV: &str = "HOOKBUS_DRAIN_DEADLINE";
/// Read by `hookbus_runtime::ops::init_tracing` in every process, outside clap.
const TRACING_ENV: &[&str] = &["RUST_LOG", "HOOKBUS_LOG_FORMAT"];

#[derive(Clone, Copy, PartialEq, Debug)]
enum Kind {
    Counter,
    Gauge,
    Histogram,
}
use Kind::{Counter, Gauge, Histogram};

/// The contract: the metric names the processes export, which dashboards and alerts may use.
const METRICS: &[(&str, Kind)] = &[
    // producer
    ("hookbus_events_ingested_total", Counter),
    ("hookbus_events_published_total", Counter),
    ("hookbus_ingest_rejected_total", Counter),
    ("hookbus_publish_duration_seconds", Histogram),
    // router
    ("hookbus_router_events_total", Counter),
    ("hookbus_router_fanout", Histogram),
    ("hookbus_router_deliveries_published_total", Counter),
    ("hookbus_hooks", Gauge),
    ("hookbus_hook_cache_loaded_timestamp_seconds", Gauge),
    ("hookbus_queue_messages", Gauge),
    // deliverer
    ("hookbus_deliveries_total", Counter),
    ("hookbus_delivery_attempts_total", Counter),
    ("hookbus_delivery_attempt_duration_seconds", Histogram),
    ("hookbus_delivery_latency_seconds", Histogram),
    ("hookbus_deliveries_in_flight", Gauge),
    ("hookbus_deliverer_hook_consumers", Gauge),
    ("hookbus_hooks_disabled_total", Counter),
    ("hookbus_delivery_logs_dropped_total", Counter),
    ("hookbus_hook_backlog_messages", Gauge),
    ("hookbus_hook_oldest_message_age_seconds", Gauge),
    ("hookbus_retry_tier_messages", Gauge),
    ("hookbus_dead_letter_messages", Gauge),
    // every process
    ("hookbus_rabbitmq_connected", Gauge),
    ("hookbus_redis_connected", Gauge),
];

/// Gauges that every replica exports alike (read from the broker or the shared hook store):
/// summed over replicas they would count each queue once per replica, so queries take the
/// max, by this label where one is given.
const SHARED_GAUGES: &[(&str, Option<&str>)] = &[
    ("hookbus_hook_backlog_messages", Some("hook_id")),
    ("hookbus_hook_oldest_message_age_seconds", Some("hook_id")),
    ("hookbus_dead_letter_messages", Some("hook_id")),
    ("hookbus_retry_tier_messages", Some("tier")),
    ("hookbus_queue_messages", None),
    ("hookbus_hooks", None),
    ("hookbus_hook_cache_loaded_timestamp_seconds", None),
];

/// Dashboard panels operators need, with a metric each must query.
const REQUIRED_PANELS: &[(&str, &str)] = &[
    ("Delivery rate", "hookbus_deliveries_total"),
    ("Success ratio", "hookbus_deliveries_total"),
    (
        "Latency p50 / p99 (event accepted → 2xx)",
        "hookbus_delivery_latency_seconds_bucket",
    ),
    ("Backlog per hook", "hookbus_hook_backlog_messages"),
    (
        "Oldest message age per hook",
        "hookbus_hook_oldest_message_age_seconds",
    ),
    ("Dead letters per hook", "hookbus_dead_letter_messages"),
    ("Retry tiers", "hookbus_retry_tier_messages"),
    ("In-flight deliveries", "hookbus_deliveries_in_flight"),
    (
        "Router fan-out (deliveries per event)",
        "hookbus_router_fanout",
    ),
    ("Ingest rate", "hookbus_events_ingested_total"),
    ("Ingest rejections", "hookbus_ingest_rejected_total"),
];

/// Alert rules operators need, with a metric each must query.
const REQUIRED_ALERTS: &[(&str, &str)] = &[
    ("HookbusDeadLettersGrowing", "hookbus_dead_letter_messages"),
    ("HookbusDeliverySuccessRatioLow", "hookbus_deliveries_total"),
    (
        "HookbusBacklogAgeHigh",
        "hookbus_hook_oldest_message_age_seconds",
    ),
    ("HookbusProcessDown", "up"),
    ("HookbusProcessNotReady", "hookbus_rabbitmq_connected"),
];

// ---------------------------------------------------------------------------------------
// The binaries, as their clap definitions describe them.

struct Binary {
    /// The binary's name, which is also its compose service and its command in containers.
    name: String,
    /// Every environment variable it reads, with its default.
    env: BTreeMap<String, Option<String>>,
    /// The variable of its listen address, and the address by default.
    listen_env: String,
    default_listen: SocketAddr,
}

impl Binary {
    fn from_clap(command: clap::Command) -> Binary {
        let mut env = BTreeMap::new();
        let mut listen = None;
        for arg in command.get_arguments() {
            let Some(var) = arg.get_env() else { continue };
            let var = var.to_string_lossy().into_owned();
            let default = arg
                .get_default_values()
                .first()
                .map(|v| v.to_string_lossy().into_owned());
            if arg.get_id().as_str() == "listen" {
                let addr = default.as_deref().expect("a default listen address");
                listen = Some((var.clone(), addr.parse().expect("a socket address")));
            }
            env.insert(var, default);
        }
        for var in TRACING_ENV {
            env.insert((*var).to_owned(), None);
        }
        let (listen_env, default_listen) = listen.expect("a `listen` argument");
        Binary {
            name: command.get_name().to_owned(),
            env,
            listen_env,
            default_listen,
        }
    }

    fn port(&self) -> u16 {
        self.default_listen.port()
    }

    fn job(&self) -> String {
        format!("hookbus-{}", self.name)
    }

    /// Variables without which the process is useless in a container: its broker and store
    /// (the defaults point at 127.0.0.1), its listen address (likewise), and the API token
    /// it refuses to start without (`RunError::NoToken` of the producer and the router).
    fn required_env(&self) -> Vec<String> {
        let mut vars = vec![
            "HOOKBUS_AMQP_URL".to_owned(),
            "HOOKBUS_REDIS_URL".to_owned(),
            self.listen_env.clone(),
        ];
        match self.name.as_str() {
            "producer" => vars.push("HOOKBUS_INGEST_TOKEN".into()),
            "router" => vars.push("HOOKBUS_ADMIN_TOKEN".into()),
            _ => {}
        }
        vars
    }

    /// The value a variable takes: as configured, else the binary's default.
    fn value_of(&self, configured: &BTreeMap<String, String>, var: &str) -> Option<String> {
        configured
            .get(var)
            .cloned()
            .or_else(|| self.env.get(var).cloned().flatten())
    }

    /// Problems with one process's environment as a deployment sets it.
    fn check_env(&self, place: &str, configured: &BTreeMap<String, String>) -> Vec<String> {
        let mut problems = Vec::new();
        for var in configured.keys() {
            if !self.env.contains_key(var) {
                problems.push(format!(
                    "{place}: `{}` does not read {var} (it reads {:?})",
                    self.name,
                    self.env.keys().collect::<Vec<_>>()
                ));
            }
        }
        for var in self.required_env() {
            if !configured.contains_key(&var) {
                problems.push(format!("{place}: {var} is not set for `{}`", self.name));
            }
        }
        for var in ["HOOKBUS_AMQP_URL", "HOOKBUS_REDIS_URL"] {
            let value = configured.get(var).map(String::as_str).unwrap_or("");
            if value.contains("127.0.0.1") || value.contains("localhost") {
                problems.push(format!(
                    "{place}: {var} of `{}` points at the container itself: {value}",
                    self.name
                ));
            }
        }
        match configured
            .get(&self.listen_env)
            .map(|v| v.parse::<SocketAddr>())
        {
            Some(Ok(addr)) if addr.ip().is_unspecified() && addr.port() == self.port() => {}
            Some(_) => problems.push(format!(
                "{place}: {} of `{}` must be 0.0.0.0:{} (all interfaces, the usual port), is {:?}",
                self.listen_env,
                self.name,
                self.port(),
                configured.get(&self.listen_env)
            )),
            None => {}
        }
        problems
    }
}

fn binaries() -> Vec<Binary> {
    vec![
        Binary::from_clap(hookbus_producer::Config::command()),
        Binary::from_clap(hookbus_router::Config::command()),
        Binary::from_clap(hookbus_deliverer::Config::command()),
    ]
}

fn binary<'a>(bins: &'a [Binary], name: &str) -> &'a Binary {
    bins.iter()
        .find(|b| b.name == name)
        .expect("a hookbus binary")
}

/// A process's drain deadline as configured (or by default), which its termination grace
/// must outlast. A process without one of its own (the producer answers the requests under
/// way) is held to the pipeline's, the deliverers' `deliverers`.
fn drain_deadline(
    bin: &Binary,
    configured: &BTreeMap<String, String>,
    deliverers: Duration,
) -> Duration {
    assert!(
        bin.name != "deliverer" || bin.env.contains_key(DRAIN_DEADLINE_ENV),
        "the deliverer does not read {DRAIN_DEADLINE_ENV}"
    );
    match bin.value_of(configured, DRAIN_DEADLINE_ENV) {
        Some(value) => parse_duration(&value).expect("a duration"),
        None => deliverers,
    }
}

// ---------------------------------------------------------------------------------------
// Reading the files.

fn deploy_path(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../deploy")
        .join(relative)
}

fn read(relative: &str) -> String {
    let path = deploy_path(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

fn yaml(relative: &str) -> Value {
    let mut value: Value = serde_yaml::from_str(&read(relative))
        .unwrap_or_else(|e| panic!("{relative} is not valid YAML: {e}"));
    value
        .apply_merge()
        .unwrap_or_else(|e| panic!("{relative}: merge keys: {e}"));
    value
}

fn yaml_documents(relative: &str) -> Vec<Value> {
    serde_yaml::Deserializer::from_str(&read(relative))
        .map(|doc| {
            let mut value = Value::deserialize(doc)
                .unwrap_or_else(|e| panic!("{relative} is not valid YAML: {e}"));
            value.apply_merge().expect("merge keys");
            value
        })
        .filter(|v| !v.is_null())
        .collect()
}

fn json(relative: &str) -> serde_json::Value {
    serde_json::from_str(&read(relative))
        .unwrap_or_else(|e| panic!("{relative} is not valid JSON: {e}"))
}

/// A scalar as the text a process would see in its environment.
fn scalar(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Null => String::new(),
        other => panic!("not a scalar: {other:?}"),
    }
}

fn str_at<'a>(value: &'a Value, path: &[&str]) -> Option<&'a str> {
    at(value, path).and_then(Value::as_str)
}

fn at<'a>(mut value: &'a Value, path: &[&str]) -> Option<&'a Value> {
    for key in path {
        value = value.get(*key)?;
    }
    Some(value)
}

fn seq(value: Option<&Value>) -> &[Value] {
    value
        .and_then(Value::as_sequence)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

fn string_map(value: Option<&Value>) -> BTreeMap<String, String> {
    value
        .and_then(Value::as_mapping)
        .map(|m| m.iter().map(|(k, v)| (scalar(k), scalar(v))).collect())
        .unwrap_or_default()
}

fn assert_no_problems(what: &str, problems: Vec<String>) {
    assert!(problems.is_empty(), "{what}:\n  {}", problems.join("\n  "));
}

// ---------------------------------------------------------------------------------------
// Metric names in PromQL.

fn metric_names(expr: &str) -> BTreeSet<String> {
    let re = Regex::new(r"(?:^|[^A-Za-z0-9_:])(hookbus_[a-z0-9_]+)").expect("a regex");
    re.captures_iter(expr).map(|c| c[1].to_owned()).collect()
}

/// The histogram a `_bucket`, `_sum` or `_count` series belongs to.
fn histogram_of(series: &str) -> Option<&str> {
    ["_bucket", "_sum", "_count"]
        .iter()
        .find_map(|suffix| series.strip_suffix(suffix))
}

/// Whether a name is a contract metric, or a series of a contract histogram.
fn is_exported(name: &str) -> bool {
    let kind = |n: &str| METRICS.iter().find(|(m, _)| *m == n).map(|(_, k)| *k);
    kind(name).is_some() || histogram_of(name).is_some_and(|h| kind(h) == Some(Histogram))
}

/// Whether a query reads `metric`, or one of its series if it is a histogram.
fn queries_metric(query: &str, metric: &str) -> bool {
    metric_names(query)
        .iter()
        .any(|name| name == metric || histogram_of(name) == Some(metric))
}

/// Problems with the metric names of a query: those that are not in the contract.
fn check_names(place: &str, query: &str) -> Vec<String> {
    metric_names(query)
        .into_iter()
        .filter(|name| !is_exported(name))
        .map(|name| format!("{place}: `{name}` is not a metric hookbus exports"))
        .collect()
}

/// Problems with one PromQL expression: unknown metrics, shared gauges not max-aggregated,
/// histogram buckets outside histogram_quantile by le.
fn check_expr(place: &str, expr: &str) -> Vec<String> {
    let mut problems = check_names(place, expr);
    for (gauge, label) in SHARED_GAUGES {
        let uses = Regex::new(&format!(r"\b{gauge}\b"))
            .expect("a regex")
            .find_iter(expr)
            .count();
        let aggregated =
            Regex::new(&format!(r"max\s*(?:by\s*\(([^)]*)\))?\s*\(\s*{gauge}\b")).expect("a regex");
        let good = aggregated
            .captures_iter(expr)
            .filter(|c| match label {
                Some(label) => c
                    .get(1)
                    .is_some_and(|by| by.as_str().split(',').any(|l| l.trim() == *label)),
                None => true,
            })
            .count();
        if uses != good {
            let by = label.map(|l| format!(" by ({l})")).unwrap_or_default();
            problems.push(format!(
                "{place}: {gauge} is exported alike by every replica: aggregate it with max{by}: {expr}"
            ));
        }
    }
    if expr.contains("_bucket")
        && !(expr.contains("histogram_quantile(") && expr.contains("by (le)"))
    {
        problems.push(format!(
            "{place}: histogram buckets belong in histogram_quantile(…, sum by (le) (…)): {expr}"
        ));
    }
    problems
}

// ---------------------------------------------------------------------------------------
// Compose.

fn compose() -> Value {
    yaml("compose.yaml")
}

fn compose_services(compose: &Value) -> &serde_yaml::Mapping {
    compose
        .get("services")
        .and_then(Value::as_mapping)
        .expect("compose services")
}

fn compose_env(service: &Value) -> BTreeMap<String, String> {
    match service.get("environment") {
        Some(Value::Sequence(items)) => items
            .iter()
            .map(|item| {
                let item = scalar(item);
                let (k, v) = item.split_once('=').unwrap_or((&item, ""));
                (k.to_owned(), v.to_owned())
            })
            .collect(),
        other => string_map(other),
    }
}

/// `(source, target)` of each bind mount (a source starting with `.`).
fn compose_binds(service: &Value) -> Vec<(String, String)> {
    seq(service.get("volumes"))
        .iter()
        .filter_map(Value::as_str)
        .filter(|v| v.starts_with('.'))
        .map(|v| {
            let mut parts = v.split(':');
            let source = parts.next().unwrap_or_default().to_owned();
            let target = parts.next().unwrap_or_default().to_owned();
            (source, target)
        })
        .collect()
}

#[test]
fn compose_runs_each_binary_as_its_configuration_says() {
    let bins = binaries();
    let compose = compose();
    let services = compose_services(&compose);
    let deliverer_env = compose_env(
        services
            .get("deliverer")
            .expect("a deliverer compose service"),
    );
    let deliverers = drain_deadline(binary(&bins, "deliverer"), &deliverer_env, Duration::ZERO);
    let mut problems = Vec::new();
    for bin in &bins {
        let place = format!("compose.yaml services.{}", bin.name);
        let Some(service) = services.get(bin.name.as_str()) else {
            problems.push(format!("{place}: missing"));
            continue;
        };
        let deadline = drain_deadline(bin, &compose_env(service), deliverers);
        let command: Vec<String> = seq(service.get("command")).iter().map(scalar).collect();
        if command != [bin.name.clone()] {
            problems.push(format!(
                "{place}: command is {command:?}, not [{}]",
                bin.name
            ));
        }
        if str_at(service, &["build", "dockerfile"]) != Some("deploy/Dockerfile")
            || str_at(service, &["build", "context"]) != Some("..")
        {
            problems.push(format!(
                "{place}: must build deploy/Dockerfile from the repository root"
            ));
        }
        let env = compose_env(service);
        problems.extend(bin.check_env(&place, &env));

        let readyz = format!("http://127.0.0.1:{}{READYZ}", bin.port());
        let healthcheck: Vec<String> = seq(at(service, &["healthcheck", "test"]))
            .iter()
            .map(scalar)
            .collect();
        if !healthcheck.iter().any(|part| part.contains(&readyz)) {
            problems.push(format!(
                "{place}: healthcheck {healthcheck:?} does not call {readyz}"
            ));
        }
        match str_at(service, &["stop_grace_period"]).map(parse_duration) {
            Some(Ok(grace)) if grace > deadline => {}
            other => problems.push(format!(
                "{place}: stop_grace_period {other:?} must exceed the drain deadline {deadline:?}"
            )),
        }
        for mapping in seq(service.get("ports")) {
            let mapping = scalar(mapping);
            let container_port = mapping.rsplit(':').next().unwrap_or_default();
            if container_port != bin.port().to_string() {
                problems.push(format!(
                    "{place}: port mapping {mapping} does not reach port {}",
                    bin.port()
                ));
            }
        }
        if bin.name == "deliverer" {
            if !seq(service.get("ports")).is_empty() || service.get("container_name").is_some() {
                problems.push(format!(
                    "{place}: a fixed host port or container name prevents --scale"
                ));
            }
            let replicas = at(service, &["deploy", "replicas"]).and_then(Value::as_u64);
            if replicas.is_none_or(|n| n < 1) {
                problems.push(format!("{place}: deploy.replicas must be set"));
            }
        }
    }
    for (name, service) in services {
        for (source, target) in compose_binds(service) {
            if !deploy_path(&source).exists() {
                problems.push(format!(
                    "compose.yaml services.{}: bind mount {source} does not exist",
                    scalar(name)
                ));
            }
            if target.is_empty() {
                problems.push(format!(
                    "compose.yaml services.{}: bind mount {source} has no target",
                    scalar(name)
                ));
            }
        }
    }
    let rabbitmq = services.get("rabbitmq").expect("a rabbitmq service");
    let plugins_mounted = compose_binds(rabbitmq)
        .iter()
        .any(|(s, t)| s == "./rabbitmq/enabled_plugins" && t == "/etc/rabbitmq/enabled_plugins");
    if !plugins_mounted || !read("rabbitmq/enabled_plugins").contains("rabbitmq_prometheus") {
        problems.push("compose.yaml: RabbitMQ must run with rabbitmq_prometheus enabled".into());
    }
    assert_no_problems("deploy/compose.yaml", problems);
}

// ---------------------------------------------------------------------------------------
// Dockerfile.

#[test]
fn dockerfile_builds_the_three_binaries_into_a_slim_non_root_image() {
    let bins = binaries();
    let text = read("Dockerfile");
    let mut problems = Vec::new();
    let build = "cargo build --release --locked --bins -p hookbus-producer -p hookbus-router -p hookbus-deliverer";
    if !text.contains(build) {
        problems.push(format!("the build stage does not run `{build}`"));
    }
    // Instructions, with continuation lines joined and comments left out.
    let instructions: Vec<String> = text
        .replace("\\\n", " ")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_owned)
        .collect();
    let from: Vec<&String> = instructions
        .iter()
        .filter(|l| l.starts_with("FROM "))
        .collect();
    if from.len() < 2
        || !from[0].starts_with("FROM rust:")
        || !from
            .last()
            .is_some_and(|l| l.contains("debian:") && l.contains("-slim"))
    {
        problems.push(format!(
            "stages must be a Rust build, then slim Debian: {from:?}"
        ));
    }
    let runtime = text.rsplit("\nFROM ").next().unwrap_or_default();
    for bin in &bins {
        if !runtime
            .lines()
            .any(|l| l.starts_with("COPY --from=build") && l.contains(&format!("/{}", bin.name)))
        {
            problems.push(format!(
                "the runtime stage does not copy the `{}` binary",
                bin.name
            ));
        }
    }
    if !runtime.contains("ca-certificates") {
        problems.push("the runtime stage lacks ca-certificates".into());
    }
    match instructions
        .iter()
        .rev()
        .find_map(|l| l.strip_prefix("USER "))
    {
        Some(user) if !user.starts_with('0') && !user.starts_with("root") => {}
        other => problems.push(format!("the image must run as a non-root user: {other:?}")),
    }
    let mut env = BTreeMap::new();
    for line in instructions.iter().filter_map(|l| l.strip_prefix("ENV ")) {
        for pair in line.split_whitespace() {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            env.insert(k.to_owned(), v.to_owned());
        }
    }
    for var in env.keys() {
        if !bins.iter().any(|b| b.env.contains_key(var)) {
            problems.push(format!("ENV {var}: no hookbus binary reads it"));
        }
    }
    let exposed: BTreeSet<String> = instructions
        .iter()
        .filter_map(|l| l.strip_prefix("EXPOSE "))
        .flat_map(|l| l.split_whitespace().map(str::to_owned))
        .collect();
    for bin in &bins {
        let wanted = format!("0.0.0.0:{}", bin.port());
        if env.get(&bin.listen_env) != Some(&wanted) {
            problems.push(format!("ENV {} must be {wanted}", bin.listen_env));
        }
        if !exposed.contains(&bin.port().to_string()) {
            problems.push(format!("EXPOSE lacks {}", bin.port()));
        }
    }
    let ignore = read("Dockerfile.dockerignore");
    if !ignore.lines().any(|l| l.trim().ends_with("target")) {
        problems.push("Dockerfile.dockerignore must keep target/ out of the context".into());
    }
    assert_no_problems("deploy/Dockerfile", problems);
}

// ---------------------------------------------------------------------------------------
// Kubernetes.

struct Manifests {
    objects: Vec<Value>,
}

impl Manifests {
    fn load() -> Manifests {
        let kustomization = yaml("k8s/kustomization.yaml");
        let listed: BTreeSet<String> = seq(kustomization.get("resources"))
            .iter()
            .map(scalar)
            .collect();
        let present: BTreeSet<String> = std::fs::read_dir(deploy_path("k8s"))
            .expect("deploy/k8s")
            .map(|e| {
                e.expect("a directory entry")
                    .file_name()
                    .to_string_lossy()
                    .into_owned()
            })
            .filter(|n| n.ends_with(".yaml") && n != "kustomization.yaml")
            .collect();
        assert_eq!(
            listed, present,
            "k8s/kustomization.yaml must list every manifest in deploy/k8s"
        );
        let objects = present
            .iter()
            .flat_map(|file| yaml_documents(&format!("k8s/{file}")))
            .collect();
        Manifests { objects }
    }

    fn of_kind<'a>(&'a self, kind: &str) -> impl Iterator<Item = &'a Value> + 'a {
        let kind = kind.to_owned();
        self.objects
            .iter()
            .filter(move |o| str_at(o, &["kind"]) == Some(kind.as_str()))
    }

    fn named(&self, kind: &str, name: &str) -> Option<&Value> {
        self.of_kind(kind)
            .find(|o| str_at(o, &["metadata", "name"]) == Some(name))
    }

    /// Keys of a ConfigMap's or Secret's data.
    fn data(&self, kind: &str, name: &str) -> Option<BTreeMap<String, String>> {
        let object = self.named(kind, name)?;
        let mut data = string_map(object.get("data"));
        data.extend(string_map(object.get("stringData")));
        Some(data)
    }

    /// The environment a container gets: names with their values where the manifests hold
    /// them (a Secret's value is read too, to check it does not point at loopback).
    fn container_env(
        &self,
        place: &str,
        container: &Value,
    ) -> (BTreeMap<String, String>, Vec<String>) {
        let mut env = BTreeMap::new();
        let mut problems = Vec::new();
        for source in seq(container.get("envFrom")) {
            for (kind, key) in [("ConfigMap", "configMapRef"), ("Secret", "secretRef")] {
                let Some(name) = str_at(source, &[key, "name"]) else {
                    continue;
                };
                match self.data(kind, name) {
                    Some(data) => env.extend(data),
                    None => problems.push(format!("{place}: envFrom {kind} {name} does not exist")),
                }
            }
        }
        for var in seq(container.get("env")) {
            let name = str_at(var, &["name"]).expect("an env name").to_owned();
            let value = if let Some(value) = var.get("value") {
                Some(scalar(value))
            } else {
                [("ConfigMap", "configMapKeyRef"), ("Secret", "secretKeyRef")]
                    .iter()
                    .find_map(|(kind, key)| {
                        let reference = at(var, &["valueFrom", key])?;
                        let object = str_at(reference, &["name"])?;
                        let key = str_at(reference, &["key"])?;
                        let value = self.data(kind, object).and_then(|d| d.get(key).cloned());
                        if value.is_none() {
                            problems.push(format!(
                                "{place}: {name} refers to a missing {kind} key {object}/{key}"
                            ));
                        }
                        value
                    })
            };
            env.insert(name, value.unwrap_or_default());
        }
        (env, problems)
    }
}

/// A probe's or a Service's port, by name or number, as a container port number.
fn resolve_port(container: &Value, port: Option<&Value>) -> Option<u64> {
    match port? {
        Value::Number(n) => n.as_u64(),
        Value::String(name) => seq(container.get("ports"))
            .iter()
            .find(|p| str_at(p, &["name"]) == Some(name.as_str()))
            .and_then(|p| p.get("containerPort"))
            .and_then(Value::as_u64),
        _ => None,
    }
}

fn labels_match(selector: &BTreeMap<String, String>, labels: &BTreeMap<String, String>) -> bool {
    !selector.is_empty() && selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

/// Seconds of a `preStop: exec: [sleep, N]` hook, which the grace period must also cover.
fn pre_stop_seconds(container: &Value) -> u64 {
    let command: Vec<String> = seq(at(container, &["lifecycle", "preStop", "exec", "command"]))
        .iter()
        .map(scalar)
        .collect();
    match command.as_slice() {
        [sleep, n] if sleep.ends_with("sleep") => n.parse().expect("whole seconds"),
        [] => 0,
        other => panic!("a preStop hook the test cannot time: {other:?}"),
    }
}

#[test]
fn kubernetes_manifests_run_each_binary_as_its_configuration_says() {
    let bins = binaries();
    let manifests = Manifests::load();
    let kustomization = yaml("k8s/kustomization.yaml");
    let images: BTreeSet<String> = seq(kustomization.get("images"))
        .iter()
        .filter_map(|i| str_at(i, &["name"]).map(str::to_owned))
        .collect();
    let mut problems = Vec::new();
    let mut deliverers = None;
    let mut deployments = Vec::new();
    for bin in &bins {
        let found: Vec<(&Value, &Value)> = manifests
            .of_kind("Deployment")
            .flat_map(|d| {
                seq(at(d, &["spec", "template", "spec", "containers"]))
                    .iter()
                    .map(move |c| (d, c))
            })
            .filter(|(_, c)| {
                seq(c.get("command")).first().map(scalar).as_deref() == Some(bin.name.as_str())
            })
            .collect();
        let [(deployment, container)] = found.as_slice() else {
            problems.push(format!(
                "k8s: {} Deployments run `{}`, not one",
                found.len(),
                bin.name
            ));
            continue;
        };
        let place = format!(
            "k8s Deployment {}",
            str_at(deployment, &["metadata", "name"]).unwrap_or("?")
        );
        let (env, env_problems) = manifests.container_env(&place, container);
        problems.extend(env_problems);
        problems.extend(bin.check_env(&place, &env));
        if bin.name == "deliverer" {
            deliverers = Some(drain_deadline(bin, &env, Duration::ZERO));
        }
        deployments.push((bin, *deployment, *container, env));
    }
    let deliverers = deliverers.expect("a deliverer Deployment");

    for (bin, deployment, container, env) in &deployments {
        let deadline = drain_deadline(bin, env, deliverers);
        let place = format!(
            "k8s Deployment {}",
            str_at(deployment, &["metadata", "name"]).unwrap_or("?")
        );
        let port = u64::from(bin.port());
        let pod = at(deployment, &["spec", "template"]).expect("a pod template");
        let pod_labels = string_map(at(pod, &["metadata", "labels"]));
        if !labels_match(
            &string_map(at(deployment, &["spec", "selector", "matchLabels"])),
            &pod_labels,
        ) {
            problems.push(format!("{place}: selector does not match its pod labels"));
        }
        if !seq(container.get("ports"))
            .iter()
            .any(|p| p.get("containerPort").and_then(Value::as_u64) == Some(port))
        {
            problems.push(format!("{place}: no containerPort {port}"));
        }
        for (probe, path) in [("livenessProbe", HEALTHZ), ("readinessProbe", READYZ)] {
            let get = at(container, &[probe, "httpGet"]);
            let probe_path = get.and_then(|g| str_at(g, &["path"]));
            let probe_port = resolve_port(container, get.and_then(|g| g.get("port")));
            if probe_path != Some(path) || probe_port != Some(port) {
                problems.push(format!(
                    "{place}: {probe} must GET {path} on {port}, is {probe_path:?} on {probe_port:?}"
                ));
            }
        }
        let annotations = string_map(at(pod, &["metadata", "annotations"]));
        for (key, wanted) in [
            ("prometheus.io/scrape", "true".to_owned()),
            ("prometheus.io/port", port.to_string()),
            ("prometheus.io/path", METRICS_PATH.to_owned()),
        ] {
            if annotations.get(key) != Some(&wanted) {
                problems.push(format!("{place}: annotation {key} must be {wanted}"));
            }
        }
        let grace = at(pod, &["spec", "terminationGracePeriodSeconds"]).and_then(Value::as_u64);
        let needed = deadline + Duration::from_secs(pre_stop_seconds(container));
        if grace.is_none_or(|g| Duration::from_secs(g) <= needed) {
            problems.push(format!(
                "{place}: terminationGracePeriodSeconds {grace:?} must exceed the drain deadline plus preStop ({needed:?})"
            ));
        }
        for section in ["requests", "limits"] {
            for resource in ["cpu", "memory"] {
                if at(container, &["resources", section, resource]).is_none() {
                    problems.push(format!("{place}: no resources.{section}.{resource}"));
                }
            }
        }
        if at(pod, &["spec", "securityContext", "runAsNonRoot"]).and_then(Value::as_bool)
            != Some(true)
        {
            problems.push(format!("{place}: pods must run as non-root"));
        }
        let image = str_at(container, &["image"]).unwrap_or_default();
        if !images.contains(image.split(':').next().unwrap_or_default()) {
            problems.push(format!(
                "{place}: image {image} is not one kustomization.yaml sets"
            ));
        }
        let services: Vec<&Value> = manifests
            .of_kind("Service")
            .filter(|s| labels_match(&string_map(at(s, &["spec", "selector"])), &pod_labels))
            .collect();
        if services.is_empty() {
            problems.push(format!("{place}: no Service selects its pods"));
        }
        for service in services {
            for service_port in seq(at(service, &["spec", "ports"])) {
                let target = service_port.get("targetPort").or(service_port.get("port"));
                if resolve_port(container, target) != Some(port) {
                    problems.push(format!(
                        "{place}: Service {} targets {target:?}, not port {port}",
                        str_at(service, &["metadata", "name"]).unwrap_or("?")
                    ));
                }
            }
        }
    }

    let (_, deliverer, _, _) = deployments
        .iter()
        .find(|(b, ..)| b.name == "deliverer")
        .expect("a deliverer Deployment");
    let deliverer_labels = string_map(at(deliverer, &["spec", "template", "metadata", "labels"]));
    let budgets: Vec<&Value> = manifests
        .of_kind("PodDisruptionBudget")
        .filter(|p| {
            labels_match(
                &string_map(at(p, &["spec", "selector", "matchLabels"])),
                &deliverer_labels,
            )
        })
        .collect();
    if budgets.len() != 1
        || !budgets.iter().all(|p| {
            at(p, &["spec", "maxUnavailable"]).is_some()
                || at(p, &["spec", "minAvailable"]).is_some()
        })
    {
        problems.push("k8s: deliverers need one PodDisruptionBudget with a limit".into());
    }
    assert_no_problems("deploy/k8s", problems);
}

#[test]
fn keda_scales_the_deliverer_deployment_on_the_hook_queues() {
    let bins = binaries();
    let manifests = Manifests::load();
    let deliverer = manifests
        .of_kind("Deployment")
        .find(|d| {
            seq(at(d, &["spec", "template", "spec", "containers"]))
                .iter()
                .any(|c| seq(c.get("command")).first().map(scalar).as_deref() == Some("deliverer"))
        })
        .expect("a deliverer Deployment");
    let deliverer_name = str_at(deliverer, &["metadata", "name"]).expect("a name");
    let config = manifests
        .data("ConfigMap", "hookbus-config")
        .unwrap_or_default();
    let deliverer_bin = binary(&bins, "deliverer");
    let prefix = deliverer_bin
        .value_of(&config, "HOOKBUS_PREFIX")
        .expect("a prefix");
    let topology = Topology::new(&prefix);
    let schedule = deliverer_bin
        .value_of(&BTreeMap::new(), "HOOKBUS_RETRY_SCHEDULE")
        .expect("a retry schedule");

    let mut problems = Vec::new();
    let scaled: Vec<&Value> = manifests.of_kind("ScaledObject").collect();
    let [scaled] = scaled.as_slice() else {
        panic!("k8s: {} ScaledObjects, not one", scaled.len());
    };
    let target = at(scaled, &["spec", "scaleTargetRef"]).expect("a scaleTargetRef");
    if str_at(target, &["name"]) != Some(deliverer_name)
        || !matches!(str_at(target, &["kind"]), None | Some("Deployment"))
    {
        problems.push(format!(
            "ScaledObject targets {target:?}, not Deployment {deliverer_name}"
        ));
    }
    if at(deliverer, &["spec", "replicas"]).is_some() {
        problems.push("the deliverer Deployment sets replicas, which the HPA owns".into());
    }
    let min = at(scaled, &["spec", "minReplicaCount"])
        .and_then(Value::as_u64)
        .unwrap_or(0);
    let max = at(scaled, &["spec", "maxReplicaCount"])
        .and_then(Value::as_u64)
        .unwrap_or(0);
    if min < 1 || max < min {
        problems.push(format!(
            "replica bounds {min}..{max}: at least one deliverer, max ≥ min"
        ));
    }
    let triggers = seq(at(scaled, &["spec", "triggers"]));
    let Some(trigger) = triggers
        .iter()
        .find(|t| str_at(t, &["type"]) == Some("rabbitmq"))
    else {
        panic!("the ScaledObject has no rabbitmq trigger");
    };
    let meta = string_map(trigger.get("metadata"));
    for (key, wanted) in [
        ("mode", "QueueLength"),
        ("useRegex", "true"),
        ("operation", "sum"),
        // KEDA reads queue name patterns only through the management API.
        ("protocol", "http"),
    ] {
        if meta.get(key).map(String::as_str) != Some(wanted) {
            problems.push(format!(
                "rabbitmq trigger: {key} must be {wanted}, is {:?}",
                meta.get(key)
            ));
        }
    }
    if !meta
        .get("value")
        .and_then(|v| v.parse::<f64>().ok())
        .is_some_and(|v| v > 0.0)
    {
        problems.push("rabbitmq trigger: value must be a positive number".into());
    }
    let pattern = meta.get("queueName").expect("a queueName");
    let queues = Regex::new(pattern).expect("queueName is a regex");
    let hook = HookId::generate();
    if !queues.is_match(&topology.hook_queue(&hook)) {
        problems.push(format!(
            "queueName {pattern} misses hook queue {}",
            topology.hook_queue(&hook)
        ));
    }
    let mut not_work = vec![
        topology.events_queue(),
        topology.events_dead_queue(),
        topology.dead_queue(&hook),
        Topology::new(&format!("{prefix}-other")).hook_queue(&hook),
    ];
    not_work.extend(
        parse_schedule(&schedule)
            .expect("a schedule")
            .into_iter()
            .map(|d| topology.retry_tier(d)),
    );
    for queue in not_work {
        if queues.is_match(&queue) {
            problems.push(format!(
                "queueName {pattern} also counts {queue}, which deliverers do not drain"
            ));
        }
    }
    let auth = str_at(trigger, &["authenticationRef", "name"]).expect("an authenticationRef");
    match manifests.named("TriggerAuthentication", auth) {
        None => problems.push(format!("TriggerAuthentication {auth} does not exist")),
        Some(auth) => {
            for reference in seq(at(auth, &["spec", "secretTargetRef"])) {
                let (name, key) = (str_at(reference, &["name"]), str_at(reference, &["key"]));
                let exists = name
                    .and_then(|n| manifests.data("Secret", n))
                    .is_some_and(|d| key.is_some_and(|k| d.contains_key(k)));
                if !exists {
                    problems.push(format!(
                        "TriggerAuthentication refers to missing Secret key {name:?}/{key:?}"
                    ));
                }
            }
        }
    }
    assert_no_problems("deploy/k8s/keda.yaml", problems);
}

// ---------------------------------------------------------------------------------------
// RabbitMQ policies.

#[test]
fn rabbitmq_policies_are_data_cover_the_hook_queues_and_drop_nothing() {
    let bins = binaries();
    let definitions = json("rabbitmq/definitions.json");
    let compose = compose();
    let env = compose_env(
        compose_services(&compose)
            .get("deliverer")
            .expect("a deliverer"),
    );
    let prefix = binary(&bins, "deliverer")
        .value_of(&env, "HOOKBUS_PREFIX")
        .expect("a prefix");
    let topology = Topology::new(&prefix);
    let hook_queue = topology.hook_queue(&HookId::generate());
    let mut problems = Vec::new();
    let policies = definitions["policies"].as_array().expect("a policies list");
    let mut covered = false;
    for policy in policies {
        let name = policy["name"].as_str().unwrap_or("?");
        for field in ["vhost", "name", "pattern", "apply-to", "definition"] {
            if policy.get(field).is_none() {
                problems.push(format!("policy {name}: no {field}"));
            }
        }
        let Some(pattern) = policy["pattern"].as_str() else {
            continue;
        };
        let Ok(re) = Regex::new(pattern) else {
            problems.push(format!("policy {name}: {pattern} is not a regex"));
            continue;
        };
        if re.is_match(&hook_queue) {
            covered = true;
            // Each of these would drop, expire or refuse deliveries: a refused publish makes
            // the router requeue the whole event, for every hook.
            for lossy in [
                "max-length",
                "max-length-bytes",
                "message-ttl",
                "expires",
                "overflow",
            ] {
                if policy["definition"].get(lossy).is_some() {
                    problems.push(format!("policy {name} sets {lossy} on hook queues"));
                }
            }
        }
    }
    if !covered {
        problems.push(format!(
            "no policy applies to hook queues such as {hook_queue}"
        ));
    }
    let k8s_copy = Manifests::load()
        .data("ConfigMap", "hookbus-rabbitmq-definitions")
        .and_then(|d| d.get("definitions.json").cloned())
        .map(|text| serde_json::from_str::<serde_json::Value>(&text).expect("JSON"));
    if k8s_copy.as_ref() != Some(&definitions) {
        problems.push(
            "k8s/rabbitmq-policies.yaml's definitions differ from rabbitmq/definitions.json".into(),
        );
    }
    let applied = compose_services(&compose).iter().any(|(_, s)| {
        compose_binds(s)
            .iter()
            .any(|(src, _)| src == "./rabbitmq/definitions.json")
    });
    if !applied {
        problems.push("compose.yaml applies no rabbitmq/definitions.json".into());
    }
    assert_no_problems("deploy/rabbitmq/definitions.json", problems);
}

// ---------------------------------------------------------------------------------------
// Prometheus.

#[test]
fn prometheus_scrapes_every_service() {
    let bins = binaries();
    let config = yaml("prometheus/prometheus.yml");
    let compose = compose();
    let mut problems = Vec::new();
    let rule_files: Vec<String> = seq(config.get("rule_files")).iter().map(scalar).collect();
    if !rule_files.iter().any(|f| f == "alerts.yml") {
        problems.push("rule_files must load alerts.yml".into());
    }
    // Every `host:port` a job scrapes, by job.
    let mut targets: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    for job in seq(config.get("scrape_configs")) {
        let name = str_at(job, &["job_name"]).expect("a job_name").to_owned();
        let path = str_at(job, &["metrics_path"]).unwrap_or(METRICS_PATH);
        let mut found = Vec::new();
        for sd in seq(job.get("dns_sd_configs")) {
            let port = sd.get("port").map(scalar).unwrap_or_default();
            found.extend(
                seq(sd.get("names"))
                    .iter()
                    .map(|n| (scalar(n), port.clone())),
            );
        }
        for sc in seq(job.get("static_configs")) {
            for target in seq(sc.get("targets")).iter().map(scalar) {
                let (host, port) = target.rsplit_once(':').expect("host:port");
                found.push((host.to_owned(), port.to_owned()));
            }
        }
        if name.starts_with("hookbus-") && path != METRICS_PATH {
            problems.push(format!("job {name} scrapes {path}, not {METRICS_PATH}"));
        }
        targets.insert(name, found);
    }
    for bin in &bins {
        let wanted = (bin.name.clone(), bin.port().to_string());
        if !targets.get(&bin.job()).is_some_and(|t| t.contains(&wanted)) {
            problems.push(format!(
                "job {} must scrape {}:{}",
                bin.job(),
                wanted.0,
                wanted.1
            ));
        }
    }
    if !targets
        .get("rabbitmq")
        .is_some_and(|t| t.contains(&("rabbitmq".into(), "15692".into())))
    {
        problems.push("job rabbitmq must scrape rabbitmq_prometheus on rabbitmq:15692".into());
    }
    // Redis has no /metrics: its exporter is scraped for it.
    let exported_by: BTreeMap<&str, &str> = [("redis", "redis-exporter")].into();
    let scraped: BTreeSet<&String> = targets.values().flatten().map(|(host, _)| host).collect();
    for (name, service) in compose_services(&compose) {
        let name = scalar(name);
        let one_shot = str_at(service, &["restart"]) == Some("no");
        let via = exported_by.get(name.as_str()).copied().unwrap_or(&name);
        if !one_shot && !scraped.contains(&via.to_owned()) && name != "prometheus" {
            problems.push(format!("compose service {name} is not scraped"));
        }
    }
    assert_no_problems("deploy/prometheus/prometheus.yml", problems);
}

#[test]
fn alert_rules_query_exported_metrics_of_the_scraped_jobs() {
    let bins = binaries();
    let alerts = yaml("prometheus/alerts.yml");
    let jobs: Vec<String> = bins.iter().map(Binary::job).collect();
    let job_regex = Regex::new(r#"job\s*=~\s*"([^"]*)""#).expect("a regex");
    let job_equal = Regex::new(r#"job\s*=\s*"([^"]*)""#).expect("a regex");
    let mut problems = Vec::new();
    let mut rules = BTreeMap::new();
    for group in seq(alerts.get("groups")) {
        for rule in seq(group.get("rules")) {
            let Some(name) = str_at(rule, &["alert"]) else {
                continue;
            };
            let expr = str_at(rule, &["expr"]).unwrap_or_default().to_owned();
            let place = format!("alert {name}");
            problems.extend(check_expr(&place, &expr));
            for field in [
                &["for"][..],
                &["labels", "severity"],
                &["annotations", "summary"],
            ] {
                if at(rule, field).is_none() {
                    problems.push(format!("{place}: no {}", field.join(".")));
                }
            }
            // Job selectors must name the jobs prometheus.yml scrapes.
            for c in job_regex.captures_iter(&expr) {
                let re = Regex::new(&format!("^(?:{})$", &c[1])).expect("a job regex");
                if !jobs.iter().all(|j| re.is_match(j)) {
                    problems.push(format!(
                        "{place}: job=~\"{}\" misses one of {jobs:?}",
                        &c[1]
                    ));
                }
            }
            for c in job_equal.captures_iter(&expr) {
                if !jobs.iter().any(|j| j == &c[1]) {
                    problems.push(format!("{place}: job=\"{}\" is not a scraped job", &c[1]));
                }
            }
            rules.insert(name.to_owned(), expr);
        }
    }
    for (alert, metric) in REQUIRED_ALERTS {
        match rules.get(*alert) {
            None => problems.push(format!("alert {alert} is missing")),
            Some(expr)
                if !Regex::new(&format!(r"\b{metric}\b"))
                    .expect("a regex")
                    .is_match(expr) =>
            {
                problems.push(format!("alert {alert} does not query {metric}"))
            }
            Some(_) => {}
        }
    }
    assert_no_problems("deploy/prometheus/alerts.yml", problems);
}

// ---------------------------------------------------------------------------------------
// Grafana.

fn dashboard_panels(panels: &serde_json::Value, out: &mut Vec<serde_json::Value>) {
    for panel in panels.as_array().into_iter().flatten() {
        out.push(panel.clone());
        dashboard_panels(&panel["panels"], out);
    }
}

#[test]
fn dashboard_has_the_panels_and_queries_exported_metrics() {
    let dashboard = json("grafana/dashboards/hookbus.json");
    let datasources = yaml("grafana/provisioning/datasources/prometheus.yaml");
    let providers = yaml("grafana/provisioning/dashboards/hookbus.yaml");
    let compose = compose();
    let mut problems = Vec::new();

    let uid = seq(datasources.get("datasources"))
        .iter()
        .find(|d| str_at(d, &["type"]) == Some("prometheus"))
        .and_then(|d| str_at(d, &["uid"]))
        .expect("a provisioned Prometheus datasource with a uid")
        .to_owned();
    let variables = dashboard["templating"]["list"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let datasource_var = variables
        .iter()
        .find(|v| v["type"] == "datasource" && v["query"] == "prometheus");
    let var_name = datasource_var
        .and_then(|v| v["name"].as_str())
        .map(|n| format!("${{{n}}}"));
    if datasource_var.is_some_and(|v| v["current"]["value"] != uid.as_str()) {
        problems.push(format!(
            "the datasource variable must default to the provisioned uid {uid}"
        ));
    }
    let datasource_ok = |ds: &serde_json::Value| {
        ds.is_null()
            || ds["uid"] == uid.as_str()
            || var_name.as_deref().is_some_and(|n| ds["uid"] == n)
    };
    for var in variables.iter().filter(|v| v["type"] == "query") {
        let query = var["query"]["query"]
            .as_str()
            .or(var["query"].as_str())
            .unwrap_or_default();
        problems.extend(check_names(&format!("variable {}", var["name"]), query));
    }

    let mut panels = Vec::new();
    dashboard_panels(&dashboard["panels"], &mut panels);
    let mut ids = BTreeSet::new();
    let mut queries: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for panel in &panels {
        let title = panel["title"].as_str().unwrap_or_default().to_owned();
        if !ids.insert(panel["id"].as_u64().expect("a panel id")) {
            problems.push(format!("panel {title}: duplicate id"));
        }
        if panel["gridPos"]["w"].as_u64().is_none() {
            problems.push(format!("panel {title}: no gridPos"));
        }
        if panel["type"] == "row" {
            continue;
        }
        if !datasource_ok(&panel["datasource"]) {
            problems.push(format!(
                "panel {title}: datasource {} is not provisioned",
                panel["datasource"]
            ));
        }
        let targets = panel["targets"].as_array().cloned().unwrap_or_default();
        if targets.is_empty() {
            problems.push(format!("panel {title}: no queries"));
        }
        for target in &targets {
            let expr = target["expr"].as_str().unwrap_or_default();
            problems.extend(check_expr(&format!("panel {title}"), expr));
            if !datasource_ok(&target["datasource"]) {
                problems.push(format!(
                    "panel {title}: a query's datasource is not provisioned"
                ));
            }
            queries
                .entry(title.clone())
                .or_default()
                .push(expr.to_owned());
        }
    }
    for (title, metric) in REQUIRED_PANELS {
        match queries.get(*title) {
            None => problems.push(format!("panel {title:?} is missing")),
            Some(exprs) if !exprs.iter().any(|e| queries_metric(e, metric)) => {
                problems.push(format!("panel {title:?} does not query {metric}"))
            }
            Some(_) => {}
        }
    }
    let latency = queries
        .iter()
        .find(|(t, _)| t.starts_with("Latency p50 / p99"))
        .map(|(_, e)| e.join("\n"))
        .unwrap_or_default();
    for phi in ["0.5", "0.99"] {
        if !latency.contains(&format!("histogram_quantile({phi}, ")) {
            problems.push(format!("the latency panel lacks the {phi} quantile"));
        }
    }

    // Grafana finds the files where compose mounts them.
    let grafana = compose_services(&compose)
        .get("grafana")
        .expect("a grafana service");
    let binds = compose_binds(grafana);
    let mounted = |source: &str| {
        binds
            .iter()
            .find(|(s, _)| s == source)
            .map(|(_, t)| t.clone())
    };
    let provider_paths: Vec<&str> = seq(providers.get("providers"))
        .iter()
        .filter_map(|p| str_at(p, &["options", "path"]))
        .collect();
    if mounted("./grafana/dashboards")
        .as_deref()
        .is_none_or(|t| !provider_paths.contains(&t))
    {
        problems.push(format!(
            "the dashboard provider reads {provider_paths:?}, where compose does not mount ./grafana/dashboards"
        ));
    }
    if mounted("./grafana/provisioning").as_deref() != Some("/etc/grafana/provisioning") {
        problems
            .push("compose must mount ./grafana/provisioning at /etc/grafana/provisioning".into());
    }
    assert_no_problems("deploy/grafana", problems);
}

// ---------------------------------------------------------------------------------------
// What the processes really serve, and promtool.

/// The probe and scrape paths the manifests use are the ones every process serves.
#[tokio::test]
async fn probe_and_metrics_paths_are_served() {
    let readiness = Readiness::default();
    let rabbitmq = readiness.flag("rabbitmq");
    let registry = hookbus_deliverer::metrics::Metrics::new().registry;
    let app = ops::routes(registry, readiness);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a port");
    let base = format!("http://{}", listener.local_addr().expect("an address"));
    let shutdown = tokio_util::sync::CancellationToken::new();
    let server = tokio::spawn(ops::serve(listener, app, shutdown.clone()));
    let http = reqwest::Client::new();
    let status = |path: &'static str| {
        let (http, url) = (http.clone(), format!("{base}{path}"));
        async move {
            http.get(url)
                .send()
                .await
                .expect("an answer")
                .status()
                .as_u16()
        }
    };
    assert_eq!(status(HEALTHZ).await, 200);
    assert_eq!(
        status(READYZ).await,
        503,
        "not ready while RabbitMQ is down"
    );
    rabbitmq.set(true);
    assert_eq!(status(READYZ).await, 200);
    let metrics = http
        .get(format!("{base}{METRICS_PATH}"))
        .send()
        .await
        .expect("an answer")
        .text()
        .await
        .expect("a body");
    assert!(
        metrics.contains("hookbus_deliveries_in_flight"),
        "{metrics}"
    );
    shutdown.cancel();
    server.await.expect("the server task").expect("the server");
}

#[test]
fn promtool_validates_the_prometheus_files() {
    let dir = deploy_path("prometheus");
    let runs = [
        vec!["check", "config", "prometheus.yml"],
        vec!["check", "rules", "alerts.yml"],
        vec!["test", "rules", "alerts_test.yml"],
    ];
    for args in runs {
        let output = match std::process::Command::new("promtool")
            .args(&args)
            .current_dir(&dir)
            .output()
        {
            Ok(output) => output,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                println!(
                    "note: promtool is not installed (Debian: apt-get install prometheus); \
                     deploy/prometheus was not validated by it"
                );
                return;
            }
            Err(err) => panic!("running promtool: {err}"),
        };
        assert!(
            output.status.success(),
            "promtool {}:\n{}{}",
            args.join(" "),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

/// `deploy/test.sh` with a stand-in `cargo` that prints `output` and exits with `code`:
/// the script's exit code and its last line.
fn test_command_with(output: &str, code: i32) -> (i32, String) {
    let bin = std::env::temp_dir().join(format!("hookbus-fake-cargo-{}", uuid::Uuid::now_v7()));
    std::fs::create_dir_all(&bin).unwrap();
    let cargo = bin.join("cargo");
    std::fs::write(
        &cargo,
        format!("#!/bin/sh\ncat <<'OUT'\n{output}OUT\nexit {code}\n"),
    )
    .unwrap();
    std::fs::set_permissions(&cargo, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let run = std::process::Command::new("bash")
        .arg(deploy_path("test.sh"))
        .env("PATH", path)
        .output()
        .expect("bash runs deploy/test.sh");
    std::fs::remove_dir_all(&bin).unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout).into_owned();
    let last = stdout.lines().last().unwrap_or_default().to_owned();
    (run.status.code().unwrap_or(-1), last)
}

#[test]
fn the_test_command_says_when_the_build_failed_or_no_test_ran() {
    let (code, last) = test_command_with(
        "error[E0425]: cannot find value `x` in this scope\n\
         error: could not compile `hookbus-router` (lib) due to 1 previous error\n",
        101,
    );
    assert_eq!(code, 101, "{last}");
    assert!(
        last.contains("build failed") && last.contains("hookbus-router"),
        "{last}"
    );

    let none = "test result: ok. 0 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out\n";
    let (code, last) = test_command_with(none, 0);
    assert_ne!(code, 0, "no test ran, yet it passed: {last}");
    assert!(last.contains("no test ran"), "{last}");

    let some = "test result: ok. 3 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out\n\
                test result: FAILED. 2 passed; 1 failed; 0 ignored; 0 measured; 0 filtered out\n";
    let (code, last) = test_command_with(some, 101);
    assert_eq!((code, last.as_str()), (101, "total: 5 passed, 1 failed"));
}

#[test]
fn the_demo_report_gives_what_the_readme_examples_need() {
    let demo = read("demo.sh");
    let report: String = demo
        .lines()
        .filter(|l| l.trim_start().starts_with("echo "))
        .collect::<Vec<_>>()
        .join("\n");
    let export = report
        .lines()
        .find(|l| l.contains("export "))
        .expect("an export line to paste");
    for var in [
        "HOOKBUS_INGEST_TOKEN",
        "HOOKBUS_ADMIN_TOKEN",
        "HOOKBUS_PREFIX",
    ] {
        assert!(export.contains(&format!("{var}=${var}")), "{var}: {export}");
    }
    for port in [7801, 7802, 7803, 7804] {
        let url = format!("http://127.0.0.1:{port}/metrics");
        assert!(report.contains(&url), "{url} is not in the report");
    }
    assert!(
        report.contains("http://127.0.0.1:7802/console"),
        "the report does not give the console's URL"
    );
    for var in ["HOOKBUS_ALLOW_HTTP", "HOOKBUS_ALLOW_PRIVATE_TARGETS"] {
        assert!(
            report.contains(var),
            "the report does not say the demo sets {var}"
        );
    }
}
