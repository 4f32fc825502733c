//! The pipeline at a glance, as the console's overview and hooks list show it, in shapes
//! every process agrees on (the Redis side is the runtime crate's `overview`):
//!
//! - **activity**: events routed, deliveries and failed attempts, counted per
//!   [`ACTIVITY_BUCKET_MS`] over the last [`ACTIVITY_WINDOW_MS`], summed over every router
//!   and deliverer (each adds its own counts to a shared bucket);
//! - **attempt durations** per hook in coarse buckets ([`DURATION_BOUNDS_MS`]), so a p99
//!   over 24 hours costs a dozen counters per hour instead of every duration;
//! - **queue readings** ([`QueueReading`]): a hook's backlog and its oldest waiting
//!   delivery, as a deliverer last measured them;
//! - **presence** ([`Presence`]): which processes are live and ready, each announcing itself
//!   every [`PRESENCE_EVERY_MS`].

use serde::{Deserialize, Serialize};

pub const ACTIVITY_BUCKET_MS: i64 = 10_000;
pub const ACTIVITY_WINDOW_MS: i64 = 3600 * 1000;

/// The activity bucket (its index since the epoch) that holds the instant `ms`.
pub fn activity_bucket(ms: i64) -> i64 {
    ms.div_euclid(ACTIVITY_BUCKET_MS)
}

/// What an activity bucket counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Tally {
    /// Events a router fanned out (confirmed), whatever the number of hooks.
    Routed,
    /// Attempts that succeeded.
    Delivered,
    /// Attempts that failed (retried or dead-lettered afterwards).
    Failed,
}

impl Tally {
    pub const ALL: [Tally; 3] = [Tally::Routed, Tally::Delivered, Tally::Failed];

    /// The bucket hash's field.
    pub fn field(self) -> &'static str {
        match self {
            Tally::Routed => "routed",
            Tally::Delivered => "delivered",
            Tally::Failed => "failed",
        }
    }
}

/// One bucket of the activity chart; `at` is the bucket's start (epoch ms).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ActivityPoint {
    pub at: i64,
    pub routed: u64,
    pub delivered: u64,
    pub failed: u64,
}

/// The buckets of the hour that ends at `now_ms`, oldest first (the current, partial bucket
/// last).
pub fn activity_buckets(now_ms: i64) -> impl Iterator<Item = i64> {
    let last = activity_bucket(now_ms);
    let count = ACTIVITY_WINDOW_MS / ACTIVITY_BUCKET_MS;
    (last - count + 1)..=last
}

/// Upper bounds of the attempt-duration buckets, in milliseconds; one more bucket holds
/// everything longer.
pub const DURATION_BOUNDS_MS: [u64; 12] = [
    10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 30_000, 60_000,
];

/// Number of duration buckets: one per bound and the overflow.
pub const DURATION_BUCKETS: usize = DURATION_BOUNDS_MS.len() + 1;

/// The stats hash's field counting attempts of this duration.
pub fn duration_field(duration_ms: u64) -> String {
    match DURATION_BOUNDS_MS.iter().find(|&&b| duration_ms <= b) {
        Some(bound) => format!("le:{bound}"),
        None => "le:inf".to_owned(),
    }
}

/// Every duration field, in bucket order (the overflow last).
pub fn duration_fields() -> impl Iterator<Item = String> {
    DURATION_BOUNDS_MS
        .iter()
        .map(|b| format!("le:{b}"))
        .chain(std::iter::once("le:inf".to_owned()))
}

/// The `q` quantile (0..=1) of durations counted per bucket, as the bound of the bucket it
/// falls in: "at most this many ms". `None` without samples; the overflow bucket reports
/// the last bound (it means "longer than that").
pub fn duration_quantile(counts: &[u64; DURATION_BUCKETS], q: f64) -> Option<u64> {
    let total: u64 = counts.iter().sum();
    if total == 0 {
        return None;
    }
    let rank = ((q * total as f64).ceil() as u64).clamp(1, total);
    let mut seen = 0;
    for (i, count) in counts.iter().enumerate() {
        seen += count;
        if seen >= rank {
            return Some(DURATION_BOUNDS_MS[i.min(DURATION_BOUNDS_MS.len() - 1)]);
        }
    }
    unreachable!("the rank is at most the total")
}

/// A queue as a deliverer last measured it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QueueReading {
    pub messages: u64,
    /// Estimated age of the oldest message (0 when empty).
    pub oldest_age_ms: u64,
    /// When it was measured (epoch ms).
    pub at: i64,
}

/// A reading older than this is no longer shown: no deliverer measures that queue any more.
pub const READING_FRESH_MS: i64 = 60_000;

impl QueueReading {
    pub fn is_fresh(&self, now_ms: i64) -> bool {
        now_ms - self.at <= READING_FRESH_MS
    }

    /// Its oldest message's age at `now_ms`, assuming it still waits.
    pub fn oldest_age_at(&self, now_ms: i64) -> u64 {
        if self.messages == 0 {
            0
        } else {
            self.oldest_age_ms + (now_ms - self.at).max(0) as u64
        }
    }
}

pub const PRESENCE_EVERY_MS: i64 = 5_000;
/// A process not heard from for this long is no longer live.
pub const PRESENCE_LIVE_MS: i64 = 3 * PRESENCE_EVERY_MS;
/// A process not heard from for this long is forgotten.
pub const PRESENCE_FORGET_MS: i64 = 3600 * 1000;

/// One process, as it last announced itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Presence {
    /// `producer`, `router` or `deliverer`.
    pub role: String,
    /// Unique per process start.
    pub instance: String,
    pub host: String,
    pub ready: bool,
    /// Readiness conditions that are down.
    #[serde(default)]
    pub down: Vec<String>,
    pub started_at: i64,
    pub seen_at: i64,
}

impl Presence {
    pub fn is_live(&self, now_ms: i64) -> bool {
        now_ms - self.seen_at <= PRESENCE_LIVE_MS
    }

    /// The presence hash's field.
    pub fn field(&self) -> String {
        format!("{}/{}", self.role, self.instance)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_activity_window_is_an_hour_of_ten_second_buckets() {
        let buckets: Vec<i64> = activity_buckets(3_600_000 + 5_000).collect();
        assert_eq!(buckets.len(), 360);
        assert_eq!(*buckets.last().unwrap(), 360, "the current bucket is last");
        assert_eq!(buckets[0], 1);
        assert_eq!(activity_bucket(-1), -1);
    }

    #[test]
    fn durations_fall_in_the_first_bucket_that_holds_them() {
        assert_eq!(duration_field(0), "le:10");
        assert_eq!(duration_field(10), "le:10");
        assert_eq!(duration_field(11), "le:25");
        assert_eq!(duration_field(60_000), "le:60000");
        assert_eq!(duration_field(60_001), "le:inf");
        assert_eq!(duration_fields().count(), DURATION_BUCKETS);
    }

    #[test]
    fn the_p99_is_the_bound_of_its_bucket() {
        let mut counts = [0; DURATION_BUCKETS];
        assert_eq!(duration_quantile(&counts, 0.99), None);
        counts[0] = 99; // ≤ 10 ms
        counts[4] = 1; // ≤ 250 ms
        assert_eq!(duration_quantile(&counts, 0.99), Some(10));
        counts[4] = 2;
        assert_eq!(duration_quantile(&counts, 0.99), Some(250));
        let mut slow = [0; DURATION_BUCKETS];
        slow[DURATION_BUCKETS - 1] = 5;
        assert_eq!(duration_quantile(&slow, 0.99), Some(60_000));
    }

    #[test]
    fn a_reading_ages_while_its_queue_waits() {
        let reading = QueueReading {
            messages: 3,
            oldest_age_ms: 1_000,
            at: 10_000,
        };
        assert_eq!(reading.oldest_age_at(12_000), 3_000);
        assert!(reading.is_fresh(10_000 + READING_FRESH_MS));
        assert!(!reading.is_fresh(10_001 + READING_FRESH_MS));
        let empty = QueueReading {
            messages: 0,
            ..reading
        };
        assert_eq!(empty.oldest_age_at(99_000), 0);
    }

    proptest! {
        #[test]
        fn a_quantile_is_a_bound_at_least_as_high_as_that_share_of_samples(
            counts in proptest::array::uniform13(0u64..1000),
            q in 0.0f64..=1.0,
        ) {
            let total: u64 = counts.iter().sum();
            match duration_quantile(&counts, q) {
                None => prop_assert_eq!(total, 0),
                Some(bound) => {
                    let i = DURATION_BOUNDS_MS.iter().position(|&b| b == bound).unwrap();
                    let upto: u64 = counts[..=i].iter().sum();
                    let within = if i == DURATION_BOUNDS_MS.len() - 1 { total } else { upto };
                    prop_assert!(within as f64 >= (q * total as f64).ceil().min(total as f64));
                }
            }
        }
    }
}
