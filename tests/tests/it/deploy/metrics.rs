//! The metric contract (the names the processes export, with their kinds) and the checks of
//! a PromQL expression against it, shared by the alert rules and the dashboard.

use std::collections::BTreeSet;

use hookbus_contracts::metric_names as name;
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
    (name::EVENTS_INGESTED, Counter),
    (name::EVENTS_PUBLISHED, Counter),
    (name::INGEST_REJECTED, Counter),
    (name::INGEST_IDEMPOTENT_REPLAYS, Counter),
    (name::PUBLISH_DURATION, Histogram),
    // router
    (name::ROUTER_EVENTS, Counter),
    (name::ROUTER_FANOUT, Histogram),
    (name::ROUTER_DELIVERIES_PUBLISHED, Counter),
    (name::HOOKS, Gauge),
    (name::HOOK_CACHE_LOADED, Gauge),
    (name::QUEUE_MESSAGES, Gauge),
    (name::IDLE_QUEUES_DELETED, Counter),
    // deliverer
    (name::DELIVERIES, Counter),
    (name::DELIVERY_ATTEMPTS, Counter),
    (name::ATTEMPT_DURATION, Histogram),
    (name::DELIVERY_LATENCY, Histogram),
    (name::DELIVERIES_IN_FLIGHT, Gauge),
    (name::HOOK_CONSUMERS, Gauge),
    (name::HOOKS_OWNED, Gauge),
    (name::HOOKS_DISABLED, Counter),
    (name::DELIVERY_LOGS_DROPPED, Counter),
    (name::HOOK_BACKLOG, Gauge),
    (name::HOOK_OLDEST_MESSAGE_AGE, Gauge),
    (name::RETRY_TIER_MESSAGES, Gauge),
    (name::DEAD_LETTER_MESSAGES, Gauge),
    // every process
    (name::TRACE_SPANS_DROPPED, Counter),
    ("hookbus_rabbitmq_connected", Gauge),
    ("hookbus_redis_connected", Gauge),
];

/// The contract names every metric the contracts crate defines, and the two connection
/// gauges (of the readiness conditions) that dashboards and alerts read.
#[test]
fn the_contract_lists_every_metric_name_of_the_contracts_crate() {
    let listed: BTreeSet<String> = METRICS.iter().map(|(n, _)| (*n).to_owned()).collect();
    let mut defined: BTreeSet<String> = name::ALL.iter().map(|n| (*n).to_owned()).collect();
    defined.extend(["rabbitmq", "redis"].map(name::readiness_gauge));
    assert_eq!(listed, defined);
}

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
