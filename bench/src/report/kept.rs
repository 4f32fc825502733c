//! Sections of `docs/BENCHMARKS.md` that a command of their own measures and writes into the
//! existing file (`bench cluster-queues`, `bench console`) and that a full run keeps as they
//! are, since it measures neither. Each lies between two HTML comments (Markdown shows
//! neither); the first time, it goes before the heading that follows it in the report.

use serde::Serialize;

#[derive(Debug, Clone, Copy, Serialize)]
pub struct Kept {
    /// The section's first line.
    pub begin: &'static str,
    /// Its last line.
    pub end: &'static str,
    /// The heading it goes before when the file has no such section yet: where the report's
    /// template (`BENCHMARKS.md.j2`) places it.
    #[serde(skip)]
    pub next_heading: &'static str,
}

impl Kept {
    /// The section of `document`, marks included, if it has one.
    pub fn extract<'d>(&self, document: &'d str) -> Option<&'d str> {
        let start = document.find(self.begin)?;
        let end = start + document[start..].find(self.end)? + self.end.len();
        let end = end + usize::from(document[end..].starts_with('\n'));
        Some(&document[start..end])
    }

    /// `document` with `section` in place of its own, or before the heading that follows
    /// the section in the report (at the end without that heading).
    pub fn place(&self, document: &str, section: &str) -> String {
        if let Some(old) = self.extract(document) {
            let start = old.as_ptr() as usize - document.as_ptr() as usize;
            return [&document[..start], section, &document[start + old.len()..]].concat();
        }
        match document.find(self.next_heading) {
            Some(at) => [&document[..=at], section, &document[at..]].concat(),
            None => [document, "\n", section].concat(),
        }
    }
}
