//! The metric contract (the names the processes export, with their kinds) and the checks of
//! a PromQL expression against it, shared by the alert rules and the dashboard.

use std::collections::BTreeSet;

use regex::Regex;

#[derive(Clone, Copy, PartialEq, Debug)]
pub(super) enum Kind {
    Counter,
    Gauge,
    Histogram,
}
use Kind::{Counter, Gauge, Histogram};

/// The contract: the metric names the processes export, which dashboards and alerts may use.
pub(super) const METRICS: &[(&str, Kind)] = &[
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
pub(super) const SHARED_GAUGES: &[(&str, Option<&str>)] = &[
    ("hookbus_hook_backlog_messages", Some("hook_id")),
    ("hookbus_hook_oldest_message_age_seconds", Some("hook_id")),
    ("hookbus_dead_letter_messages", Some("hook_id")),
    ("hookbus_retry_tier_messages", Some("tier")),
    ("hookbus_queue_messages", None),
    ("hookbus_hooks", None),
    ("hookbus_hook_cache_loaded_timestamp_seconds", None),
];

pub(super) fn metric_names(expr: &str) -> BTreeSet<String> {
    let re = Regex::new(r"(?:^|[^A-Za-z0-9_:])(hookbus_[a-z0-9_]+)").expect("a regex");
    re.captures_iter(expr).map(|c| c[1].to_owned()).collect()
}

/// The histogram a `_bucket`, `_sum` or `_count` series belongs to.
pub(super) fn histogram_of(series: &str) -> Option<&str> {
    ["_bucket", "_sum", "_count"]
        .iter()
        .find_map(|suffix| series.strip_suffix(suffix))
}

/// Whether a name is a contract metric, or a series of a contract histogram.
pub(super) fn is_exported(name: &str) -> bool {
    let kind = |n: &str| METRICS.iter().find(|(m, _)| *m == n).map(|(_, k)| *k);
    kind(name).is_some() || histogram_of(name).is_some_and(|h| kind(h) == Some(Histogram))
}

/// Whether a query reads `metric`, or one of its series if it is a histogram.
pub(super) fn queries_metric(query: &str, metric: &str) -> bool {
    metric_names(query)
        .iter()
        .any(|name| name == metric || histogram_of(name) == Some(metric))
}

/// Problems with the metric names of a query: those that are not in the contract.
pub(super) fn check_names(place: &str, query: &str) -> Vec<String> {
    metric_names(query)
        .into_iter()
        .filter(|name| !is_exported(name))
        .map(|name| format!("{place}: `{name}` is not a metric hookbus exports"))
        .collect()
}

/// Problems with one PromQL expression: unknown metrics, shared gauges not max-aggregated,
/// histogram buckets outside histogram_quantile by le.
pub(super) fn check_expr(place: &str, expr: &str) -> Vec<String> {
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
