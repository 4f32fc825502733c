//! How much of the machine other programs took during the run. The figures are only
//! meaningful on an otherwise idle machine, so the report says how idle it was: the CPU
//! time of the whole machine (`/proc/stat`) minus that of the benchmark itself and the
//! servers it measures (`/proc/<pid>/stat`), as a share of the machine's capacity.

/// The shared servers of the test setup, by command name.
const SHARED: &[&str] = &["beam.smp", "redis-server"];

/// `/proc`'s unit of CPU time (`USER_HZ`, 100 on every Linux the benchmark runs on).
const SECONDS_PER_JIFFY: f64 = 0.01;

/// The servers a measurement uses, besides this process.
pub enum Servers {
    /// The shared RabbitMQ and Redis (every process of their commands).
    Shared,
    /// These processes only (the nodes of a private cluster): the shared servers, and anyone
    /// else's RabbitMQ, count as other programs.
    Pids(Vec<u32>),
}

#[derive(Clone, Copy)]
pub struct CpuSample {
    /// Jiffies of all CPUs, busy or not.
    total: u64,
    /// Jiffies spent busy, by anyone.
    busy: u64,
    /// Jiffies spent by this process and the servers.
    ours: u64,
    /// Jiffies spent by the servers alone.
    servers: u64,
}

impl CpuSample {
    /// `None` where `/proc` is not Linux's.
    pub fn take(servers: &Servers) -> Option<CpuSample> {
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
        let (ours, servers) = ours(servers);
        Some(CpuSample {
            total: user + nice + system + idle + iowait + irq + softirq + steal,
            busy: user + nice + system + irq + softirq + steal,
            ours,
            servers,
        })
    }

    /// The CPU the servers used since `start`, in cores (1.0: one core busy all along).
    pub fn servers_since(self, start: CpuSample) -> f64 {
        let total = self.total.saturating_sub(start.total).max(1);
        let cpus = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
        self.servers.saturating_sub(start.servers) as f64 / total as f64 * cpus as f64
    }

    /// The CPU time the servers used since `start`, in seconds.
    pub fn servers_seconds_since(self, start: CpuSample) -> f64 {
        self.servers.saturating_sub(start.servers) as f64 * SECONDS_PER_JIFFY
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
/// process of `servers`; and those of the servers alone.
fn ours(servers: &Servers) -> (u64, u64) {
    let Ok(own) = std::fs::read_to_string("/proc/self/stat") else {
        return (0, 0);
    };
    let Some((own_comm, _)) = jiffies(&own) else {
        return (0, 0);
    };
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return (0, 0);
    };
    let (mut live, mut of_servers) = (0, 0);
    for (server, jiffies) in entries
        .filter_map(|e| {
            let e = e.ok()?;
            let pid = e.file_name().to_str()?.parse::<u32>().ok()?;
            Some((pid, std::fs::read_to_string(e.path().join("stat")).ok()?))
        })
        .filter_map(|(pid, stat)| {
            let (comm, jiffies) = jiffies(&stat)?;
            let server = match servers {
                Servers::Shared => SHARED.contains(&comm),
                Servers::Pids(pids) => pids.contains(&pid),
            };
            (server || comm == own_comm).then_some((server, jiffies))
        })
    {
        live += jiffies;
        if server {
            of_servers += jiffies;
        }
    }
    (live + reaped_children(&own).unwrap_or(0), of_servers)
}

/// CPU time process `pid` has used, all its threads together, those that ended included.
pub fn process_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    Some(jiffies(&stat)?.1 as f64 * SECONDS_PER_JIFFY)
}

/// CPU time every live process named `command` has used (the shared RabbitMQ's Erlang VM,
/// Redis).
pub fn command_seconds(command: &str) -> f64 {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0.0;
    };
    let jiffies: u64 = entries
        .filter_map(|e| std::fs::read_to_string(e.ok()?.path().join("stat")).ok())
        .filter_map(|stat| {
            let (comm, jiffies) = jiffies(&stat)?;
            (comm == command).then_some(jiffies)
        })
        .sum();
    jiffies as f64 * SECONDS_PER_JIFFY
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
