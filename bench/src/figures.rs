//! What the measurements yield: throughput of one run, repeated runs summarised by their
//! median, and latency percentiles of a paced run.

use std::fmt;
use std::future::Future;
use std::time::Duration;

use anyhow::Result;

/// Messages per second over a measured span.
#[derive(Debug, Clone, Copy)]
pub struct Throughput {
    pub messages: usize,
    pub elapsed: Duration,
}

impl Throughput {
    pub fn per_sec(&self) -> f64 {
        self.messages as f64 / self.elapsed.as_secs_f64()
    }
}

impl fmt::Display for Throughput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} messages in {:.2} s = {:.0} msg/s",
            self.messages,
            self.elapsed.as_secs_f64(),
            self.per_sec()
        )
    }
}

/// The same saturated measurement made several times: one run is too noisy on a shared
/// two-core machine, so figures quote the median and show the range.
#[derive(Debug, Clone)]
pub struct Runs(Vec<Throughput>);

impl Runs {
    /// Runs measured one at a time (taking turns with other measurements), or built by
    /// hand in tests.
    pub fn new(runs: Vec<Throughput>) -> Self {
        Runs(runs)
    }

    pub fn messages(&self) -> usize {
        self.0.first().map_or(0, |run| run.messages)
    }

    pub fn count(&self) -> usize {
        self.0.len()
    }

    /// Median messages per second (the mean of the middle two for an even count).
    pub fn median(&self) -> f64 {
        let rates = self.sorted_rates();
        match rates.len() {
            0 => 0.0,
            n if n % 2 == 1 => rates[n / 2],
            n => (rates[n / 2 - 1] + rates[n / 2]) / 2.0,
        }
    }

    /// Slowest and fastest run, messages per second.
    pub fn range(&self) -> (f64, f64) {
        let rates = self.sorted_rates();
        (
            rates.first().copied().unwrap_or(0.0),
            rates.last().copied().unwrap_or(0.0),
        )
    }

    fn sorted_rates(&self) -> Vec<f64> {
        let mut rates: Vec<f64> = self.0.iter().map(Throughput::per_sec).collect();
        rates.sort_by(f64::total_cmp);
        rates
    }
}

/// Runs `measure` `times` times in a row, printing each run under `label`.
pub async fn repeat<F, Fut>(label: &str, times: usize, mut measure: F) -> Result<Runs>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Throughput>>,
{
    let mut runs = Vec::with_capacity(times);
    for _ in 0..times {
        let run = measure().await?;
        println!("  {label}: {run}");
        runs.push(run);
    }
    Ok(Runs(runs))
}

/// Latency percentiles of one paced run.
#[derive(Debug, Clone, Copy)]
pub struct LatencyRun {
    pub rate: u32,
    pub samples: usize,
    pub p50: Duration,
    pub p99: Duration,
    pub max: Duration,
    /// The rate the receiver actually saw (below `rate` when the path cannot keep up).
    pub achieved_per_sec: f64,
}

impl LatencyRun {
    /// From the latencies (nanoseconds) of `rate` messages a second arriving at
    /// `achieved_per_sec`; `None` without samples.
    pub fn new(rate: u32, mut latencies_ns: Vec<u64>, achieved_per_sec: f64) -> Option<Self> {
        latencies_ns.sort_unstable();
        let percentile = |p: f64| {
            let rank = (p * latencies_ns.len() as f64).ceil() as usize;
            Duration::from_nanos(latencies_ns[rank.clamp(1, latencies_ns.len()) - 1])
        };
        (!latencies_ns.is_empty()).then(|| LatencyRun {
            rate,
            samples: latencies_ns.len(),
            p50: percentile(0.50),
            p99: percentile(0.99),
            max: percentile(1.0),
            achieved_per_sec,
        })
    }
}

impl fmt::Display for LatencyRun {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms ({:.0}/s arrived)",
            ms(self.p50),
            ms(self.p99),
            ms(self.max),
            self.achieved_per_sec
        )
    }
}

/// A duration in milliseconds, for display.
pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let run = LatencyRun::new(100, (1..=100).rev().collect(), 100.0).unwrap();
        assert_eq!(run.p50, Duration::from_nanos(50));
        assert_eq!(run.p99, Duration::from_nanos(99));
        assert_eq!(run.max, Duration::from_nanos(100));
        assert_eq!(run.samples, 100);
        assert_eq!(
            LatencyRun::new(1, vec![7], 1.0).unwrap().p50,
            Duration::from_nanos(7)
        );
        assert!(LatencyRun::new(1, vec![], 1.0).is_none());
    }

    #[test]
    fn runs_report_their_median_and_range() {
        let run = |secs| Throughput {
            messages: 1000,
            elapsed: Duration::from_secs(secs),
        };
        let odd = Runs(vec![run(1), run(4), run(2)]);
        assert_eq!(odd.median(), 500.0);
        assert_eq!(odd.range(), (250.0, 1000.0));
        let even = Runs(vec![run(1), run(2)]);
        assert_eq!(even.median(), 750.0);
        assert_eq!((even.messages(), even.count()), (1000, 2));
    }
}
