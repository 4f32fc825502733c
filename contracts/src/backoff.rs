//! How long to wait before trying again a step the broker refused (a nack, a queue at its
//! length limit, a failed declare), and when to stop trying and park the message.
//!
//! Handing a message straight back to its queue retries it at once, forever on a classic
//! queue: each pass posts it again or fans it out again. So a failed step waits, doubling
//! from [`Backoff::first`] up to [`Backoff::cap`], and after [`Backoff::tries`] failures the
//! message is parked with the reason. Pure: the caller counts the failures.

use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub first: Duration,
    pub cap: Duration,
    pub tries: u32,
}

impl Backoff {
    /// 0.1, 0.2, 0.4, 0.8, 1.6, 2, 2 s: about 7 s over 8 tries, then park.
    pub const SETTLE: Backoff = Backoff {
        first: Duration::from_millis(100),
        cap: Duration::from_secs(2),
        tries: 8,
    };

    /// The wait after the `failures`-th failure (counted from 1), or `None` when the
    /// message should be parked instead.
    pub fn after(&self, failures: u32) -> Option<Duration> {
        if failures == 0 || failures >= self.tries {
            return (failures == 0).then_some(Duration::ZERO);
        }
        let doubled = self
            .first
            .saturating_mul(1u32.checked_shl(failures - 1).unwrap_or(u32::MAX));
        Some(doubled.min(self.cap))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_double_up_to_the_cap_then_the_message_is_parked() {
        let b = Backoff::SETTLE;
        let waits: Vec<_> = (1..8).map(|n| b.after(n).unwrap().as_millis()).collect();
        assert_eq!(waits, [100, 200, 400, 800, 1600, 2000, 2000]);
        assert_eq!(b.after(8), None);
        assert_eq!(b.after(1000), None);
        assert_eq!(b.after(0), Some(Duration::ZERO));
        let long = Backoff {
            tries: u32::MAX,
            ..b
        };
        assert_eq!(long.after(40), Some(b.cap));
    }
}
