//! deploy/k8s/: each Deployment runs its binary as its configuration says (environment from
//! ConfigMaps and Secrets, ports, probes, Services, scrape annotations, termination grace
//! outlasting the drain), and KEDA scales the deliverers on exactly the per-hook queues.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use hookbus_contracts::topology::Topology;
use hookbus_contracts::HookId;
use hookbus_runtime::config::parse_schedule;
use regex::Regex;
use serde_yaml::Value;

use super::binaries::*;
use super::files::*;
use super::{HEALTHZ, METRICS_PATH, READYZ};

pub(super) struct Manifests {
    objects: Vec<Value>,
}

impl Manifests {
    pub(super) fn load() -> Manifests {
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

    pub(super) fn of_kind<'a>(&'a self, kind: &str) -> impl Iterator<Item = &'a Value> + 'a {
        let kind = kind.to_owned();
        self.objects
            .iter()
            .filter(move |o| str_at(o, &["kind"]) == Some(kind.as_str()))
    }

    pub(super) fn named(&self, kind: &str, name: &str) -> Option<&Value> {
        self.of_kind(kind)
            .find(|o| str_at(o, &["metadata", "name"]) == Some(name))
    }

    /// Keys of a ConfigMap's or Secret's data.
    pub(super) fn data(&self, kind: &str, name: &str) -> Option<BTreeMap<String, String>> {
        let object = self.named(kind, name)?;
        let mut data = string_map(object.get("data"));
        data.extend(string_map(object.get("stringData")));
        Some(data)
    }

    /// The environment a container gets: names with their values where the manifests hold
    /// them (a Secret's value is read too, to check it does not point at loopback).
    pub(super) fn container_env(
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
