//! The deliverer's decisions, pure: how an attempt's result is classified, and what happens
//! next under the [`RetryPolicy`].
//!
//! Classification (the Standard Webhooks rules): 2xx delivered; 408, 429, 5xx, timeouts,
//! connection, DNS and TLS errors are worth retrying; 410 Gone dead-letters at once and
//! disables the hook; other 4xx and every 3xx (redirects are never followed) are permanent;
//! a target refused by the SSRF guard is permanent.

use std::time::Duration;

use hookbus_send::result::{AttemptResult, Failure};
use rand::Rng;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Delivered,
    Retryable {
        reason: String,
        retry_after: Option<Duration>,
    },
    /// 410 Gone: the receiver says this endpoint will never work again.
    Gone,
    Permanent {
        reason: String,
    },
}

/// What an attempt's result means for the delivery.
pub fn classify(result: &AttemptResult) -> Outcome {
    match result {
        AttemptResult::Status {
            code: 200..=299, ..
        } => Outcome::Delivered,
        AttemptResult::Status { code: 410, .. } => Outcome::Gone,
        AttemptResult::Status {
            code: code @ (408 | 429 | 500..),
            retry_after,
        } => Outcome::Retryable {
            reason: format!("HTTP {code}"),
            retry_after: *retry_after,
        },
        AttemptResult::Status {
            code: code @ 300..=399,
            ..
        } => Outcome::Permanent {
            reason: format!("HTTP {code} (redirects are not followed)"),
        },
        AttemptResult::Status { code, .. } => Outcome::Permanent {
            reason: format!("HTTP {code}"),
        },
        AttemptResult::Failed(Failure::Blocked) => Outcome::Permanent {
            reason: "target address refused by the SSRF guard".into(),
        },
        AttemptResult::Failed(f) => Outcome::Retryable {
            reason: format!("{} error", f.label()),
            retry_after: None,
        },
    }
}

/// What to do with a delivery after an attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Ack,
    /// Publish to the retry tier of this wait, then ack.
    Retry {
        tier: Duration,
        wait: Duration,
    },
    /// Publish to the hook's dead letters, then ack; and disable the hook, if `disable`.
    DeadLetter {
        reason: String,
        disable: Option<DisableCause>,
    },
}

/// Why the deliverer disables a hook.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DisableCause {
    /// The endpoint answered 410 Gone.
    Gone,
    /// The endpoint failed, without a success, for longer than the auto-disable window.
    FailingTooLong,
}

impl DisableCause {
    pub const ALL: [DisableCause; 2] = [DisableCause::Gone, DisableCause::FailingTooLong];

    pub fn label(self) -> &'static str {
        match self {
            DisableCause::Gone => "gone",
            DisableCause::FailingTooLong => "failing",
        }
    }
}

/// When to try again: `schedule[n]` is the wait before retry `n + 1`, so a schedule of
/// `k` entries allows `k + 1` attempts. Waits happen in RabbitMQ's retry tiers.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    schedule: Vec<Duration>,
    /// A fraction of each wait taken off at random, so a burst of failures does not come
    /// back as a burst.
    jitter: f64,
}

/// Logto's catalogue gives no schedule; this is about two days, as Standard Webhooks'.
pub const DEFAULT_SCHEDULE: &str = "5s,30s,2m,10m,30m,1h,3h,6h,12h,24h";

impl RetryPolicy {
    pub fn new(schedule: Vec<Duration>) -> RetryPolicy {
        RetryPolicy {
            schedule,
            jitter: 0.1,
        }
    }

    /// The distinct waits: one retry tier each.
    pub fn tiers(&self) -> Vec<Duration> {
        let mut tiers = self.schedule.clone();
        tiers.sort();
        tiers.dedup();
        tiers
    }

    pub fn max_attempts(&self) -> u32 {
        self.schedule.len() as u32 + 1
    }

    /// `attempts` counts the attempt just made (1 for the first); `rng` draws the jitter,
    /// so a test pins it with a seeded generator.
    pub fn decide(&self, outcome: &Outcome, attempts: u32, rng: &mut impl Rng) -> Decision {
        match outcome {
            Outcome::Delivered => Decision::Ack,
            Outcome::Gone => Decision::DeadLetter {
                reason: "HTTP 410 Gone: hook disabled".into(),
                disable: Some(DisableCause::Gone),
            },
            Outcome::Permanent { reason } => Decision::DeadLetter {
                reason: reason.clone(),
                disable: None,
            },
            Outcome::Retryable {
                reason,
                retry_after,
            } => match self.schedule.get(attempts as usize - 1) {
                None => Decision::DeadLetter {
                    reason: format!("{reason} after {attempts} attempts"),
                    disable: None,
                },
                Some(&scheduled) => {
                    let tier = self.tier_for(scheduled.max(retry_after.unwrap_or_default()));
                    let cut = rng.random_range(0.0..=self.jitter);
                    Decision::Retry {
                        tier,
                        wait: tier.mul_f64(1.0 - cut),
                    }
                }
            },
        }
    }

    /// The smallest tier at least `wait` long; the longest tier when `wait` exceeds them all
    /// (a `Retry-After` is honoured up to the schedule's longest wait).
    fn tier_for(&self, wait: Duration) -> Duration {
        let tiers = self.tiers();
        tiers
            .iter()
            .copied()
            .find(|t| *t >= wait)
            .unwrap_or_else(|| *tiers.last().expect("a retry needs a tier"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    /// Jitter drawn from a fixed seed: the same decisions on every run.
    fn seeded() -> StdRng {
        StdRng::seed_from_u64(7)
    }

    fn status(code: u16) -> AttemptResult {
        AttemptResult::Status {
            code,
            retry_after: None,
        }
    }

    #[test]
    fn classification_follows_standard_webhooks() {
        for code in [200, 201, 204, 299] {
            assert_eq!(classify(&status(code)), Outcome::Delivered, "{code}");
        }
        for code in [408, 429, 500, 502, 503, 599] {
            assert!(
                matches!(classify(&status(code)), Outcome::Retryable { .. }),
                "{code}"
            );
        }
        assert_eq!(classify(&status(410)), Outcome::Gone);
        for code in [301, 302, 307, 400, 401, 403, 404, 413, 422] {
            assert!(
                matches!(classify(&status(code)), Outcome::Permanent { .. }),
                "{code}"
            );
        }
        for f in [
            Failure::Timeout,
            Failure::Dns,
            Failure::Tls,
            Failure::Connect,
            Failure::Other,
        ] {
            assert!(
                matches!(
                    classify(&AttemptResult::Failed(f)),
                    Outcome::Retryable { .. }
                ),
                "{f:?}"
            );
        }
        assert!(matches!(
            classify(&AttemptResult::Failed(Failure::Blocked)),
            Outcome::Permanent { .. }
        ));
    }

    #[test]
    fn retries_follow_the_schedule_then_dead_letter() {
        let s = |secs| Duration::from_secs(secs);
        let policy = RetryPolicy::new(vec![s(1), s(2), s(4)]);
        assert_eq!(policy.max_attempts(), 4);
        let fail = classify(&status(500));
        for (attempts, expected) in [(1, s(1)), (2, s(2)), (3, s(4))] {
            match policy.decide(&fail, attempts, &mut seeded()) {
                Decision::Retry { tier, wait } => {
                    assert_eq!(tier, expected);
                    assert!(wait <= tier && wait >= tier.mul_f64(0.9), "{wait:?}");
                }
                other => panic!("attempt {attempts}: {other:?}"),
            }
        }
        match policy.decide(&fail, 4, &mut seeded()) {
            Decision::DeadLetter {
                reason,
                disable: None,
            } => assert_eq!(reason, "HTTP 500 after 4 attempts"),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            policy.decide(&Outcome::Delivered, 1, &mut seeded()),
            Decision::Ack
        );
        assert!(matches!(
            policy.decide(&Outcome::Gone, 1, &mut seeded()),
            Decision::DeadLetter {
                disable: Some(DisableCause::Gone),
                ..
            }
        ));
        assert!(matches!(
            policy.decide(&classify(&status(404)), 1, &mut seeded()),
            Decision::DeadLetter { disable: None, .. }
        ));
    }

    #[test]
    fn retry_after_picks_a_long_enough_tier_within_bounds() {
        let s = |secs| Duration::from_secs(secs);
        let policy = RetryPolicy::new(vec![s(1), s(10), s(60)]);
        let wants = |secs| Outcome::Retryable {
            reason: "HTTP 429".into(),
            retry_after: Some(s(secs)),
        };
        assert!(
            matches!(policy.decide(&wants(5), 1, &mut seeded()), Decision::Retry { tier, .. } if tier == s(10))
        );
        assert!(
            matches!(policy.decide(&wants(3600), 1, &mut seeded()), Decision::Retry { tier, .. } if tier == s(60))
        );
        assert!(
            matches!(policy.decide(&wants(0), 1, &mut seeded()), Decision::Retry { tier, .. } if tier == s(1))
        );
    }

    #[test]
    fn an_empty_schedule_means_one_attempt() {
        let policy = RetryPolicy::new(vec![]);
        assert_eq!(policy.max_attempts(), 1);
        assert!(matches!(
            policy.decide(&classify(&status(503)), 1, &mut seeded()),
            Decision::DeadLetter { .. }
        ));
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        fn failure() -> impl Strategy<Value = Failure> {
            prop::sample::select(vec![
                Failure::Timeout,
                Failure::Dns,
                Failure::Tls,
                Failure::Connect,
                Failure::Blocked,
                Failure::Other,
            ])
        }

        fn schedule() -> impl Strategy<Value = Vec<Duration>> {
            prop::collection::vec((1u64..100_000).prop_map(Duration::from_millis), 0..8)
        }

        proptest! {
            /// Standard Webhooks' rule for every status code: 2xx delivered, 410 gone, 408,
            /// 429 and 5xx retried, everything else permanent.
            #[test]
            fn every_status_is_classified_by_its_class(code in 100u16..1000, wait in prop::option::of(0u64..3600)) {
                let result = AttemptResult::Status { code, retry_after: wait.map(Duration::from_secs) };
                let outcome = classify(&result);
                match code {
                    200..=299 => prop_assert_eq!(outcome, Outcome::Delivered),
                    410 => prop_assert_eq!(outcome, Outcome::Gone),
                    408 | 429 | 500.. => {
                        let retryable = matches!(outcome, Outcome::Retryable { retry_after, .. } if retry_after == wait.map(Duration::from_secs));
                        prop_assert!(retryable);
                    }
                    _ => {
                        let permanent = matches!(outcome, Outcome::Permanent { .. });
                        prop_assert!(permanent);
                    }
                }
            }

            /// A failure to reach the endpoint is retried, except a target the guard refused.
            #[test]
            fn failures_are_retried_unless_refused(f in failure()) {
                let outcome = classify(&AttemptResult::Failed(f));
                prop_assert_eq!(f == Failure::Blocked, matches!(outcome, Outcome::Permanent { .. }));
            }

            /// A retryable failure is retried while the schedule has a wait for it, in a
            /// tier of the schedule at least as long as the wait asked for (up to the longest),
            /// the jitter taking at most a tenth off; after the last wait it is parked.
            #[test]
            fn retries_follow_the_schedule_within_the_jitter(
                schedule in schedule(),
                attempts in 1u32..12,
                retry_after in prop::option::of((0u64..200_000).prop_map(Duration::from_millis)),
                seed in any::<u64>(),
            ) {
                use rand::SeedableRng;
                let policy = RetryPolicy::new(schedule.clone());
                let outcome = Outcome::Retryable { reason: "HTTP 503".into(), retry_after };
                let decision = policy.decide(&outcome, attempts, &mut rand::rngs::StdRng::seed_from_u64(seed));
                match schedule.get(attempts as usize - 1) {
                    None => {
                        let parked = matches!(decision, Decision::DeadLetter { disable: None, .. });
                        prop_assert!(parked);
                    }
                    Some(&scheduled) => {
                        let Decision::Retry { tier, wait } = decision else {
                            return Err(TestCaseError::fail(format!("{decision:?}")));
                        };
                        let tiers = policy.tiers();
                        prop_assert!(tiers.contains(&tier));
                        let wanted = scheduled.max(retry_after.unwrap_or_default());
                        prop_assert!(tier >= wanted.min(*tiers.last().unwrap()));
                        prop_assert!(wait <= tier && wait >= tier.mul_f64(0.9));
                    }
                }
            }
        }
    }
}
