//! deploy/grafana/: the dashboard has the panels operators need, and every query reads
//! metrics the processes export, aggregated as replicas require.

use std::collections::{BTreeMap, BTreeSet};

use super::compose::*;
use super::files::*;
use super::metrics::*;

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
    (
        "Hooks owned and consumed per deliverer",
        "hookbus_deliverer_hooks_owned",
    ),
    (
        "Idle hook queues deleted",
        "hookbus_idle_hook_queues_deleted_total",
    ),
];

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
                problems.push(format!("panel {title:?} does not query {metric}"));
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
