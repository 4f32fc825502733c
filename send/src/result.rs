//! What one HTTP attempt produced, stripped of I/O types, so that the deliverer's decisions
//! (and the router's test endpoint) read it without touching the client.

use std::time::Duration;

/// What one HTTP attempt produced, stripped of I/O types so decisions can be unit-tested.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttemptResult {
    Status {
        code: u16,
        retry_after: Option<Duration>,
    },
    Failed(Failure),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    Timeout,
    Dns,
    Tls,
    Connect,
    /// The target resolved to an address the SSRF guard refuses.
    Blocked,
    /// The request could not be built or sent for another reason.
    Other,
}

impl Failure {
    pub fn label(self) -> &'static str {
        match self {
            Failure::Timeout => "timeout",
            Failure::Dns => "dns",
            Failure::Tls => "tls",
            Failure::Connect => "connect",
            Failure::Blocked => "blocked",
            Failure::Other => "other",
        }
    }
}

impl AttemptResult {
    /// A metric label: the status class, or the failure kind.
    pub fn label(&self) -> &'static str {
        match self {
            AttemptResult::Status { code, .. } => match code {
                200..=299 => "2xx",
                300..=399 => "3xx",
                400..=499 => "4xx",
                _ => "5xx",
            },
            AttemptResult::Failed(f) => f.label(),
        }
    }
}
