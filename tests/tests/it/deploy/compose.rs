//! deploy/compose.yaml and deploy/Dockerfile: each service runs its binary as its
//! configuration says (environment, listen address, ports, healthchecks, stop grace), and the
//! image builds the three binaries into a slim image that runs as a non-root user.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use hookbus_runtime::config::parse_duration;
use serde_yaml::Value;

use super::binaries::*;
use super::files::*;
use super::READYZ;

pub(super) fn compose() -> Value {
    yaml("compose.yaml")
}

pub(super) fn compose_services(compose: &Value) -> &serde_yaml::Mapping {
    compose
        .get("services")
        .and_then(Value::as_mapping)
        .expect("compose services")
}

pub(super) fn compose_env(service: &Value) -> BTreeMap<String, String> {
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
pub(super) fn compose_binds(service: &Value) -> Vec<(String, String)> {
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
    for node in RABBITMQ_NODES {
        let Some(rabbitmq) = services.get(node) else {
            problems.push(format!("compose.yaml: no service {node}"));
            continue;
        };
        let plugins_mounted = compose_binds(rabbitmq).iter().any(|(s, t)| {
            s == "./rabbitmq/enabled_plugins" && t == "/etc/rabbitmq/enabled_plugins"
        });
        if !plugins_mounted || !read("rabbitmq/enabled_plugins").contains("rabbitmq_prometheus") {
            problems.push(format!(
                "compose.yaml: {node} must run with rabbitmq_prometheus enabled"
            ));
        }
        if str_at(rabbitmq, &["hostname"]) != Some(node) {
            problems.push(format!(
                "compose.yaml: {node}'s hostname (its node name) must be {node}"
            ));
        }
    }
    assert_no_problems("deploy/compose.yaml", problems);
}

/// The RabbitMQ nodes compose runs: a cluster of three, as operators run it.
pub(super) const RABBITMQ_NODES: [&str; 3] = ["rabbitmq-1", "rabbitmq-2", "rabbitmq-3"];

#[test]
fn compose_runs_a_three_node_rabbitmq_cluster_and_hookbus_knows_every_node() {
    let mut problems = Vec::new();
    let conf = read("rabbitmq/rabbitmq.conf");
    for (i, node) in RABBITMQ_NODES.iter().enumerate() {
        let line = format!(
            "cluster_formation.classic_config.nodes.{} = rabbit@{node}",
            i + 1
        );
        if !conf.lines().any(|l| l.trim() == line) {
            problems.push(format!("rabbitmq.conf: no `{line}`"));
        }
    }
    let compose = compose();
    for (name, service) in compose_services(&compose) {
        let Some(url) = compose_env(service).get("HOOKBUS_AMQP_URL").cloned() else {
            continue;
        };
        match hookbus_runtime::broker::parse_nodes(&url) {
            Ok(nodes) => {
                for node in RABBITMQ_NODES {
                    if !nodes.iter().any(|n| n.contains(&format!("@{node}:5672/"))) {
                        problems.push(format!(
                            "services.{}: HOOKBUS_AMQP_URL does not list {node}",
                            scalar(name)
                        ));
                    }
                }
            }
            Err(err) => problems.push(format!("services.{}: {err}", scalar(name))),
        }
    }
    assert_no_problems("deploy/compose.yaml", problems);
}

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

/// Every hookbus process exports its spans to the collector, which takes OTLP/HTTP there and
/// sends them on to Jaeger, which takes OTLP (README.md, "Following one event").
#[test]
fn compose_sends_every_processs_traces_through_the_collector_to_jaeger() {
    let compose = compose();
    let services = compose_services(&compose);
    let mut problems = Vec::new();
    for bin in binaries() {
        let service = services.get(bin.name.as_str()).expect("a hookbus service");
        let endpoint = compose_env(service)
            .get("OTEL_EXPORTER_OTLP_ENDPOINT")
            .cloned();
        if endpoint.as_deref() != Some("http://otel-collector:4318") {
            problems.push(format!(
                "services.{}: OTEL_EXPORTER_OTLP_ENDPOINT is {endpoint:?}",
                bin.name
            ));
        }
    }
    let collector = yaml("otel/collector.yaml");
    let http = str_at(
        &collector,
        &["receivers", "otlp", "protocols", "http", "endpoint"],
    );
    if http != Some("0.0.0.0:4318") {
        problems.push(format!("the collector takes OTLP/HTTP on {http:?}"));
    }
    let sent_to = str_at(&collector, &["exporters", "otlp/jaeger", "endpoint"]);
    if sent_to != Some("jaeger:4317") {
        problems.push(format!("the collector sends traces to {sent_to:?}"));
    }
    let mounted = services
        .get("otel-collector")
        .map(compose_binds)
        .unwrap_or_default();
    if !mounted
        .iter()
        .any(|(source, _)| source == "./otel/collector.yaml")
    {
        problems.push("services.otel-collector does not mount otel/collector.yaml".into());
    }
    let jaeger = services.get("jaeger").map(compose_env).unwrap_or_default();
    if jaeger.get("COLLECTOR_OTLP_ENABLED").map(String::as_str) != Some("true") {
        problems.push("services.jaeger: COLLECTOR_OTLP_ENABLED must be true".into());
    }
    assert_no_problems("compose.yaml traces", problems);
}
