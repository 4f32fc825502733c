//! How much of the machine other programs took during the run. The figures are only
//! meaningful on an otherwise idle machine, so the report says how idle it was: the CPU
//! time of the whole machine (`/proc/stat`) minus that of the benchmark itself, RabbitMQ
//! and Redis (`/proc/<pid>/stat`), as a share of the machine's capacity.

/// The servers the measurement uses, besides this process.
const SERVERS: &[&str] = &["beam.smp", "redis-server"];

#[derive(Clone, Copy)]
pub struct CpuSample {
    /// Jiffies of all CPUs, busy or not.
    total: u64,
    /// Jiffies spent busy, by anyone.
    busy: u64,
    /// Jiffies spent by this process and the `SERVERS`.
    ours: u64,
}

impl CpuSample {
    /// `None` where `/proc` is not Linux's.
    pub fn take() -> Option<CpuSample> {
        let stat = std::fs::read_to_string("/proc/stat").ok()?;
        let jiffies: Vec<u64> = stat
            .lines()
            .next()?
            .split_whitespace()
            .skip(1)
            .take(8)
            .filter_map(|n| n.parse().ok())
            .collect();
        let [user, nice, system, idle, iowait, irq, softirq, steal] = jiffies[..] else {
            return None;
        };
        Some(CpuSample {
            total: user + nice + system + idle + iowait + irq + softirq + steal,
            busy: user + nice + system + irq + softirq + steal,
            ours: ours(),
        })
    }

    /// The share of the machine (0 to 1) that other processes used since `start`.
    pub fn others_since(self, start: CpuSample) -> f64 {
        let total = self.total.saturating_sub(start.total).max(1);
        let busy = self.busy.saturating_sub(start.busy);
        let ours = self.ours.saturating_sub(start.ours);
        busy.saturating_sub(ours) as f64 / total as f64
    }
}

/// User and system jiffies of this process, of its children (the services it runs in
/// processes of their own, see `process`: live ones by their command, which is this
/// process's, and reaped ones through this process's children's times), and of every live
/// process of `SERVERS`.
fn ours() -> u64 {
    let Ok(own) = std::fs::read_to_string("/proc/self/stat") else {
        return 0;
    };
    let Some((own_comm, _)) = jiffies(&own) else {
        return 0;
    };
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0;
    };
    let live: u64 = entries
        .filter_map(|e| std::fs::read_to_string(e.ok()?.path().join("stat")).ok())
        .filter_map(|stat| {
            let (comm, jiffies) = jiffies(&stat)?;
            (SERVERS.contains(&comm) || comm == own_comm).then_some(jiffies)
        })
        .sum();
    live + reaped_children(&own).unwrap_or(0)
}

/// The command and utime + stime of one `/proc/<pid>/stat` line.
fn jiffies(stat: &str) -> Option<(&str, u64)> {
    let (head, rest) = stat.rsplit_once(") ")?;
    let comm = head.split_once(" (")?.1;
    Some((comm, field(rest, 14)? + field(rest, 15)?))
}

/// cutime + cstime of one `/proc/<pid>/stat` line: the children it has waited for.
fn reaped_children(stat: &str) -> Option<u64> {
    let (_, rest) = stat.rsplit_once(") ")?;
    Some(field(rest, 16)? + field(rest, 17)?)
}

/// Field `n` (1-based, as in proc(5)) of a stat line, from the text after the command.
fn field(after_comm: &str, n: usize) -> Option<u64> {
    // After the command, the state is field 3.
    after_comm.split_whitespace().nth(n - 3)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_command_and_cpu_time_of_a_process() {
        let beam = "2955 (beam.smp) S 1 2955 2955 0 -1 4194560 1 0 0 0 700 90 0 0 20 0 30 0";
        assert_eq!(jiffies(beam), Some(("beam.smp", 790)));
        let odd = "77 (a) b) R 1 77 77 0 -1 4194560 1 0 0 0 500 50 0 0 20 0 1 0";
        assert_eq!(jiffies(odd), Some(("a) b", 550)));
        assert_eq!(reaped_children(beam), Some(0));
        let parent = "9 (bench) S 1 9 9 0 -1 4194560 1 0 0 0 700 90 12 3 20 0 30 0";
        assert_eq!(reaped_children(parent), Some(15));
    }
}
