//! The figures as tables (printed) and as `docs/BENCHMARKS.md` (written), with the machine
//! they were measured on. The words are in templates, `bench/templates/`, embedded in the
//! binary: this module hands them the figures ([`context`]) and renders them. The cluster
//! comparison, the console at scale and the cost of tracing, each measured by a command of
//! its own, have their own sections, which a full run keeps ([`kept`]).

pub mod cluster;
pub mod console;
mod context;
pub mod kept;
#[cfg(test)]
mod tests;

use std::time::Duration;

use anyhow::Result;
use minijinja::syntax::SyntaxConfig;
use minijinja::value::Serde;
use minijinja::{AutoEscape, Environment, UndefinedBehavior};
use serde::Serialize;

use crate::load::{PathFigures, Plan};
use crate::machine::Machine;
use crate::pipeline::HookbusFigures;
use crate::plot::Bar;
use crate::queues::QueueFigures;
use crate::scenarios;

pub struct Report<'a> {
    /// The plot's file name, next to the Markdown.
    pub plot: &'a str,
    pub machine: Machine,
    pub plan: &'a Plan,
    pub bare: &'a PathFigures,
    pub hookbus: &'a HookbusFigures,
    pub queues: Option<&'a [QueueFigures]>,
    pub scenarios: &'a scenarios::Figures,
    /// The cluster comparison's section ([`cluster`]), kept from the file being replaced.
    pub cluster: Option<&'a str>,
    /// The console's section ([`console`]), kept from the file being replaced.
    pub console: Option<&'a str>,
    /// The tracing section ([`TRACING`]), kept from the file being replaced.
    pub tracing: Option<&'a str>,
    /// The section of `bench backlog` and `bench changes` ([`AT_SCALE`]), kept from the
    /// file being replaced.
    pub at_scale: Option<&'a str>,
    pub run_time: Duration,
    /// The share of the CPU other programs used during the run.
    pub others_cpu: Option<f64>,
}

/// The marks around the tracing section of docs/BENCHMARKS.md: its figures come from `bench
/// tracing`, whose table is pasted there with the words around it, and a full run keeps it.
pub const TRACING: kept::Kept = kept::Kept {
    begin: "<!-- bench tracing: from here to its end mark, from `cargo run --release -p hookbus-bench -- tracing`, kept by a full run -->",
    end: "<!-- bench tracing: end -->",
    next_heading: "\n## Beyond one hook\n",
};

/// The marks around the section of `bench backlog` and `bench changes` (many hooks: a
/// backlog in each, a change among 100,000), pasted by hand like the tracing one.
pub const AT_SCALE: kept::Kept = kept::Kept {
    begin: "<!-- bench backlog and changes: from here to its end mark, from `cargo run --release -p hookbus-bench -- backlog` and `-- changes`, kept by a full run -->",
    end: "<!-- bench backlog and changes: end -->",
    next_heading: "\n## Beyond one hook\n",
};

/// Each template's source by its path under `bench/templates/`, which is also its name in
/// the templates' `include` and `import`: embedded, so that the binary needs no files beside
/// it.
macro_rules! templates {
    ($($path:literal),* $(,)?) => {
        [$(($path, include_str!(concat!("../templates/", $path)))),*]
    };
}

/// The two documents, the cluster section with its tables and the console's section, then
/// the parts they include.
const TEMPLATES: [(&str, &str); 13] = templates![
    "BENCHMARKS.md.j2",
    "tables.md.j2",
    "cluster.md.j2",
    "console.md.j2",
    "cluster-tables.md.j2",
    "parts/cluster.md.j2",
    "parts/throughput.md.j2",
    "parts/latency.md.j2",
    "parts/ratios.md.j2",
    "parts/queues.md.j2",
    "parts/scenarios.md.j2",
    "parts/targets.md.j2",
    "parts/macros.md.j2",
];

impl Report<'_> {
    /// The measured figures, as Markdown tables (also readable in a terminal).
    pub fn tables(&self) -> Result<String> {
        self.render("tables.md.j2")
    }

    /// The whole of `docs/BENCHMARKS.md`.
    pub fn markdown(&self) -> Result<String> {
        self.render("BENCHMARKS.md.j2")
    }

    fn render(&self, template: &str) -> Result<String> {
        render(template, &context::Context::new(self))
    }

    fn bare(&self) -> f64 {
        self.bare.saturated.median()
    }

    /// Every throughput figure of the run as a ratio to the bare limit, in plot order.
    pub fn bars(&self) -> Vec<Bar> {
        let bare = self.bare();
        let mut bars = Vec::new();
        let mut bar = |label: String, per_sec: f64, group: usize| {
            bars.push(Bar {
                label,
                ratio: per_sec / bare,
                group,
            });
        };
        bar("bare broker".into(), bare, 0);
        bar(
            "one hook, Rust SDK".into(),
            self.hookbus.sdk.saturated.median(),
            1,
        );
        bar(
            "one hook, HTTP ingest".into(),
            self.hookbus.ingest.median(),
            1,
        );
        bar(
            "one hook, 256 in flight".into(),
            self.hookbus.wide.median(),
            1,
        );
        let s = self.scenarios;
        if let Some(fanout) = &s.fanout {
            bar(
                format!("fan-out to {} hooks (deliveries/s)", scenarios::FANOUT),
                fanout.median(),
                2,
            );
        }
        for p in s.scale.iter().flat_map(|s| &s.points) {
            bar(
                format!("router process, {} hooks (events/s)", p.hooks),
                p.router.median(),
                3,
            );
        }
        for p in s.scaling.iter().flatten() {
            bar(
                format!("{} deliverer(s), 50 ms receiver", p.deliverers),
                p.run.per_sec(),
                4,
            );
        }
        if let Some(iso) = &s.isolation {
            bar("good hooks alone".into(), iso.alone.run.per_sec(), 5);
            bar(
                "good hooks next to a hanging one".into(),
                iso.with_hang.run.per_sec(),
                5,
            );
        }
        if let Some(storm) = &s.storm {
            bar("retry storm".into(), storm.run.per_sec(), 6);
        }
        bars
    }
}

/// `template` rendered with `context`.
fn render(template: &str, context: &impl Serialize) -> Result<String> {
    Ok(environment()?
        .get_template(template)?
        .render(Serde(context))?)
}

/// The templates, written as the output reads: a line holding only a block tag (`{% if %}`,
/// `{% for %}`, ...) leaves nothing in the output, not even its line break, and a template's
/// last line break is kept. A name the context lacks is an error, not an empty string.
fn environment() -> Result<Environment<'static>> {
    let mut env = Environment::new();
    env.set_syntax(
        SyntaxConfig::builder()
            .trim_blocks(true)
            .lstrip_blocks(true)
            .keep_trailing_newline(true)
            .build()?,
    );
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_auto_escape_callback(|_| AutoEscape::None);
    env.add_filter("fixed", fixed);
    env.add_filter("signed", signed);
    env.add_filter("grouped", grouped);
    for (name, source) in TEMPLATES {
        env.add_template(name, source)?;
    }
    Ok(env)
}

/// `{{ x|fixed(2) }}`, `{{ x|fixed(1, " MiB") }}`: a number with `digits` decimals (as
/// Rust's `{:.2}` rounds it) and a unit, or "n/a" for a figure not measured.
fn fixed(value: Option<f64>, digits: usize, unit: Option<&str>) -> String {
    match value {
        Some(value) => format!("{value:.digits$}{}", unit.unwrap_or_default()),
        None => "n/a".into(),
    }
}

/// `{{ n|grouped }}`: a count with its thousands grouped, `10,000`.
fn grouped(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

/// `{{ x|signed(0) }}`: a number with its sign, plus included.
fn signed(value: f64, digits: usize) -> String {
    format!("{value:+.digits$}")
}
