//! The console-at-scale section of `docs/BENCHMARKS.md` (`bench console`), written into the
//! existing file and kept by a full run ([`super::kept`]): the figures handed to
//! `console.md.j2`, each time already in milliseconds.

use serde::Serialize;

use super::kept::Kept;
use super::render;
use crate::console::Timed;
use crate::machine::Machine;

pub const SECTION: Kept = Kept {
    begin: "<!-- bench console: from here to its end mark, written by `cargo run --release -p hookbus-bench -- console` and kept by a full run -->",
    end: "<!-- bench console: end -->",
    next_heading: "\n## Notes\n",
};

pub struct ConsoleReport<'a> {
    pub machine: &'a Machine,
    pub hooks: usize,
    pub repeats: usize,
    pub rows: &'a [Timed],
}

#[derive(Serialize)]
struct Context<'a> {
    marks: Kept,
    machine: &'a Machine,
    hooks: usize,
    repeats: usize,
    rows: Vec<Row<'a>>,
}

#[derive(Serialize)]
struct Row<'a> {
    what: &'a str,
    path: &'a str,
    median_ms: f64,
    p95_ms: f64,
    kib: f64,
}

impl ConsoleReport<'_> {
    /// The section, from its begin mark to its end mark and line break.
    pub fn section(&self) -> anyhow::Result<String> {
        let rows = self
            .rows
            .iter()
            .map(|row| Row {
                what: row.what,
                path: &row.path,
                median_ms: row.quantile(0.5).as_secs_f64() * 1e3,
                p95_ms: row.quantile(0.95).as_secs_f64() * 1e3,
                kib: row.bytes as f64 / 1024.0,
            })
            .collect();
        render(
            "console.md.j2",
            &Context {
                marks: SECTION,
                machine: self.machine,
                hooks: self.hooks,
                repeats: self.repeats,
                rows,
            },
        )
    }
}
