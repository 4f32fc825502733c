//! deploy/prometheus/: every service is scraped where it serves `/metrics`, the alert rules
//! operators need exist and query exported metrics of scraped jobs, and `promtool` (installed
//! by deploy/tools.sh) validates the files.

use std::collections::{BTreeMap, BTreeSet};

use regex::Regex;

use super::binaries::*;
use super::compose::*;
use super::files::*;
use super::metrics::*;
use super::METRICS_PATH;

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
    for node in super::compose::RABBITMQ_NODES {
        if !targets
            .get("rabbitmq")
            .is_some_and(|t| t.contains(&(node.into(), "15692".into())))
        {
            problems.push(format!(
                "job rabbitmq must scrape rabbitmq_prometheus on {node}:15692"
            ));
        }
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
                problems.push(format!("alert {alert} does not query {metric}"));
            }
            Some(_) => {}
        }
    }
    assert_no_problems("deploy/prometheus/alerts.yml", problems);
}

#[test]
fn promtool_validates_the_prometheus_files() {
    let Some(promtool) = hookbus_tests::tools::find("promtool") else {
        let promtool = "promtool (from Debian's prometheus package)";
        return hookbus_tests::tools::skip_without("the Prometheus files' check", &[promtool]);
    };
    let dir = deploy_path("prometheus");
    let runs = [
        vec!["check", "config", "prometheus.yml"],
        vec!["check", "rules", "alerts.yml"],
        vec!["test", "rules", "alerts_test.yml"],
    ];
    for args in runs {
        let output = std::process::Command::new(&promtool)
            .args(&args)
            .current_dir(&dir)
            .output()
            .unwrap_or_else(|err| panic!("running {}: {err}", promtool.display()));
        assert!(
            output.status.success(),
            "promtool {}:\n{}{}",
            args.join(" "),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}
