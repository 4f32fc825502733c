//! Waiting for a condition, never for a length of time. A test that sleeps "long enough"
//! is slow when the machine is idle and flaky when it is busy; [`eventually`] polls a probe
//! until it reports the condition, and on timeout fails with what was awaited and the last
//! thing the probe saw, so a red test says why.

use std::fmt::{Debug, Display};
use std::time::Duration;

/// How often [`eventually`] probes.
pub const POLL: Duration = Duration::from_millis(50);

/// Runs `probe` until it returns `Ok`, and returns that value; panics after `within` with
/// `what` and the last `Err` the probe returned (what it saw instead).
///
/// ```text
/// let hooks = eventually("the router to know 2 hooks", WAIT, async || {
///     check(p.router_metric("hookbus_hooks").await, |n| *n == 2.0)
/// })
/// .await;
/// ```
pub async fn eventually<T, S: Debug>(
    what: impl Display,
    within: Duration,
    mut probe: impl AsyncFnMut() -> Result<T, S>,
) -> T {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match probe().await {
            Ok(value) => return value,
            Err(seen) if tokio::time::Instant::now() >= deadline => {
                panic!("waited {within:?} for {what}; last seen: {seen:?}")
            }
            Err(_) => tokio::time::sleep(POLL).await,
        }
    }
}

/// The probe of a plain condition: `Ok(value)` when `holds(&value)`, else `Err(value)`,
/// which [`eventually`] reports if it never holds.
pub fn check<T>(value: T, holds: impl FnOnce(&T) -> bool) -> Result<T, T> {
    if holds(&value) {
        Ok(value)
    } else {
        Err(value)
    }
}
