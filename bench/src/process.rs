//! A hookbus service in a process of its own: this executable re-run as
//! `bench service <role>` (see `hookbus_tests::service`), so that the memory and CPU time
//! read from `/proc/<pid>` are that service's alone, not shared with the load, the receiver
//! and the other services of the in-process pipelines.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};
use hookbus_tests::servers::spare_port;
use tokio::process::Child;

/// The subcommand that runs a service in place of the benchmark.
pub const SERVICE: &str = "service";

pub struct ServiceProcess {
    child: Child,
    pid: u32,
    /// Where its `/metrics` answers.
    pub addr: SocketAddr,
}

impl ServiceProcess {
    /// Starts `role` (`router`, `deliverer`) under `prefix` and waits until its `/healthz`
    /// answers.
    pub async fn start(role: &str, prefix: &str, http: &reqwest::Client) -> Result<Self> {
        ServiceProcess::start_with(role, prefix, http, &[]).await
    }

    /// [`ServiceProcess::start`], with settings of its own (`HOOKBUS_...` variables).
    pub async fn start_with(
        role: &str,
        prefix: &str,
        http: &reqwest::Client,
        settings: &[(&str, String)],
    ) -> Result<Self> {
        let exe = std::env::current_exe().context("locating the bench executable")?;
        let addr: SocketAddr = ([127, 0, 0, 1], spare_port()).into();
        let listen = format!("HOOKBUS_{}_LISTEN", role.to_uppercase());
        let child = hookbus_tests::service::command(exe, &[SERVICE, role], prefix)
            .env(listen, addr.to_string())
            .envs(settings.iter().map(|(k, v)| (k, v)))
            .spawn()
            .with_context(|| format!("starting a {role} process"))?;
        let pid = child
            .id()
            .ok_or_else(|| anyhow!("the {role} exited at once"))?;
        let process = ServiceProcess { child, pid, addr };
        let deadline = Instant::now() + Duration::from_secs(30);
        while !http
            .get(format!("http://{addr}/healthz"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            if Instant::now() > deadline {
                return Err(anyhow!("the {role} process did not answer on {addr}"));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(process)
    }

    /// CPU time it has used, all threads, in seconds: the scheduler's nanosecond counts
    /// (`/proc/<pid>/task/*/schedstat`), as a router's few milliseconds per thousand events
    /// are a handful of the 10 ms ticks of `/proc/<pid>/stat`. A service's threads live as
    /// long as it does, so none is missed for having ended.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    pub fn cpu_seconds(&self) -> Option<f64> {
        cpu_seconds(self.pid)
    }

    /// Its resident memory (`VmRSS`), in bytes.
    pub fn rss_bytes(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid)).ok()?;
        let kib = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))?
            .trim()
            .strip_suffix("kB")?
            .trim()
            .parse::<u64>()
            .ok()?;
        Some(kib * 1024)
    }

    /// Kills it and reaps it, so that its CPU time counts as this process's children's.
    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}

/// CPU time process `pid` has used, all its live threads, in seconds (see
/// [`ServiceProcess::cpu_seconds`]).
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    threads_cpu_seconds(pid, |_| true)
}

/// CPU time the live threads of process `pid` named `name` have used, in seconds.
pub fn named_threads_cpu_seconds(pid: u32, name: &str) -> Option<f64> {
    threads_cpu_seconds(pid, |task| {
        std::fs::read_to_string(task.join("comm")).is_ok_and(|comm| comm.trim_end() == name)
    })
}

fn threads_cpu_seconds(pid: u32, keep: impl Fn(&std::path::Path) -> bool) -> Option<f64> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).ok()?;
    let mut ns = 0u64;
    for task in tasks {
        let task = task.ok()?.path();
        if !keep(&task) {
            continue;
        }
        let schedstat = std::fs::read_to_string(task.join("schedstat")).ok()?;
        ns += schedstat.split_whitespace().next()?.parse::<u64>().ok()?;
    }
    Some(ns as f64 / 1e9)
}
