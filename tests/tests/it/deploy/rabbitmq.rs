//! RabbitMQ policies (deploy/rabbitmq/definitions.json and its copy for Kubernetes) are
//! data, cover the hook queues, and drop nothing.

use hookbus_contracts::topology::Topology;
use hookbus_contracts::HookId;
use regex::Regex;

use super::binaries::*;
use super::compose::*;
use super::files::*;
use super::kubernetes::Manifests;

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
