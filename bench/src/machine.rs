//! The machine and software a run measured: figures mean little without them.

use time::macros::format_description;
use time::OffsetDateTime;
use tokio::process::Command;

use crate::rabbitmqctl::Node;

#[derive(serde::Serialize)]
pub struct Machine {
    pub date: String,
    pub cpus: usize,
    pub cpu_model: String,
    pub rustc: String,
    pub rabbitmq: String,
    pub erlang: String,
}

impl Machine {
    /// This machine, and the versions `node` reports.
    pub async fn detect(node: Node<'_>) -> Machine {
        let versions = node.versions().await;
        let date = OffsetDateTime::now_utc()
            .format(format_description!(
                "[year]-[month]-[day] [hour]:[minute] UTC"
            ))
            .unwrap_or_default();
        let (rabbitmq, erlang) = versions.map_or_else(
            || ("unknown".into(), "unknown".into()),
            |v| (v.rabbitmq, v.erlang),
        );
        Machine {
            date,
            cpus: std::thread::available_parallelism().map_or(0, std::num::NonZero::get),
            cpu_model: cpu_model().unwrap_or_else(|| "unknown".into()),
            rustc: rustc_version().await.unwrap_or_else(|| "unknown".into()),
            rabbitmq,
            erlang,
        }
    }
}

fn cpu_model() -> Option<String> {
    let info = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("model name"))?;
    Some(line.split_once(':')?.1.trim().to_owned())
}

async fn rustc_version() -> Option<String> {
    let out = Command::new("rustc").arg("--version").output().await.ok()?;
    Some(String::from_utf8_lossy(&out.stdout).trim().to_owned()).filter(|v| !v.is_empty())
}
