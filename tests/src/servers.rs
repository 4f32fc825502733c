//! Private RabbitMQ and Redis servers on spare ports, for the tests that restart a server:
//! restarting the shared ones would disturb every other test and any running pipeline.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use tokio::process::{Child, Command};

use crate::wait::{check, eventually};

/// Where [`spare_port`] looks: below Linux's ephemeral range (32768–60999 by default).
const SPARE_PORTS: std::ops::Range<u16> = 20_000..32_000;

/// A free TCP port on loopback, released before the server binds it.
///
/// A port the kernel handed out for `bind(0)` can be handed out again, as the source port
/// of any outgoing connection or to another `bind(0)`, in the moment between its release
/// and the server's bind (a CI run saw a cluster node given such a port fail to
/// boot). Ports below the ephemeral range are never handed out by the kernel, and the
/// counter keeps two picks of this process apart.
pub fn spare_port() -> u16 {
    static PICKS: AtomicU32 = AtomicU32::new(0);
    let span = u32::from(SPARE_PORTS.end - SPARE_PORTS.start);
    let start = std::process::id().wrapping_mul(7_919);
    loop {
        let pick = start.wrapping_add(PICKS.fetch_add(1, Ordering::Relaxed)) % span;
        let port = SPARE_PORTS.start + u16::try_from(pick).expect("below the span");
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// Waits until `port` on loopback accepts connections (`up`) or refuses them.
pub(crate) async fn wait_port(port: u16, up: bool, within: Duration) {
    let what = format!("port {port} to go {}", if up { "up" } else { "down" });
    eventually(what, within, async || {
        let open = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok();
        check(open, |open| *open == up)
    })
    .await;
}

/// A RabbitMQ node of its own (name, ports, data directory), stopped when dropped.
pub struct RabbitNode {
    pub port: u16,
    name: String,
    dir: PathBuf,
}

impl RabbitNode {
    pub async fn start() -> RabbitNode {
        let port = spare_port();
        let dir = std::env::temp_dir().join(format!("hookbus-rabbit-{port}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("mnesia")).unwrap();
        std::fs::create_dir_all(dir.join("log")).unwrap();
        std::fs::write(dir.join("enabled_plugins"), "[].").unwrap();
        std::fs::write(
            dir.join("rabbitmq.conf"),
            format!("listeners.tcp.local = 127.0.0.1:{port}\n"),
        )
        .unwrap();
        // The server script runs as the `rabbitmq` user when started by root.
        let _ = std::process::Command::new("chown")
            .args(["-R", "rabbitmq:rabbitmq"])
            .arg(&dir)
            .status();
        let node = RabbitNode {
            port,
            name: format!("hookbus-test-{port}@localhost"),
            dir,
        };
        node.up().await;
        node
    }

    pub fn amqp_url(&self) -> String {
        format!("amqp://guest:guest@127.0.0.1:{}/%2f", self.port)
    }

    async fn up(&self) {
        let d = |p: &str| self.dir.join(p);
        let status = Command::new("rabbitmq-server")
            .arg("-detached")
            .env("RABBITMQ_NODENAME", &self.name)
            .env("RABBITMQ_CONFIG_FILE", d("rabbitmq.conf"))
            .env(
                "RABBITMQ_DIST_PORT",
                (self.port as u32 + 20000).min(65000).to_string(),
            )
            .env("RABBITMQ_MNESIA_BASE", d("mnesia"))
            .env("RABBITMQ_LOG_BASE", d("log"))
            .env("RABBITMQ_PID_FILE", d("pid"))
            .env("RABBITMQ_FEATURE_FLAGS_FILE", d("feature_flags"))
            .env("RABBITMQ_PLUGINS_EXPAND_DIR", d("plugins"))
            .env("RABBITMQ_ENABLED_PLUGINS_FILE", d("enabled_plugins"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .await
            .expect("rabbitmq-server runs");
        assert!(status.success(), "rabbitmq-server -detached failed");
        wait_port(self.port, true, Duration::from_secs(90)).await;
    }

    pub async fn stop(&self) {
        let _ = Command::new("rabbitmqctl")
            .args(["-n", &self.name, "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .await;
        wait_port(self.port, false, Duration::from_secs(30)).await;
    }

    pub async fn restart(&self) {
        self.stop().await;
        self.up().await;
    }

    /// Runs `rabbitmqctl` against this node; true if it succeeded.
    pub async fn ctl(&self, args: &[&str]) -> bool {
        rabbitmqctl(&self.name, args).await
    }
}

impl Drop for RabbitNode {
    fn drop(&mut self) {
        discard_node(&self.name, &self.dir);
    }
}

/// Runs `rabbitmqctl` against the node `name`; true if it succeeded.
pub(crate) async fn rabbitmqctl(name: &str, args: &[&str]) -> bool {
    Command::new("rabbitmqctl")
        .args(["-n", name])
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .await
        .is_ok_and(|s| s.success())
}

/// Stops the private node `name` (from a `Drop`, so blocking) and removes its data.
pub(crate) fn discard_node(name: &str, dir: &std::path::Path) {
    let _ = std::process::Command::new("rabbitmqctl")
        .args(["-n", name, "stop"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    let _ = std::fs::remove_dir_all(dir);
}

/// A Redis server of its own, with an append-only file so hooks survive its restart.
pub struct RedisServer {
    pub port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

impl RedisServer {
    pub async fn start() -> RedisServer {
        let port = spare_port();
        let dir = std::env::temp_dir().join(format!("hookbus-redis-{port}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let mut server = RedisServer {
            port,
            dir,
            child: None,
        };
        server.up().await;
        server
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    async fn up(&mut self) {
        let child = Command::new("redis-server")
            .args([
                "--bind",
                "127.0.0.1",
                "--port",
                &self.port.to_string(),
                "--save",
                "",
                "--appendonly",
                "yes",
            ])
            .arg("--dir")
            .arg(&self.dir)
            .stdout(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("redis-server starts");
        self.child = Some(child);
        wait_port(self.port, true, Duration::from_secs(30)).await;
    }

    pub async fn restart(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill().await;
        }
        wait_port(self.port, false, Duration::from_secs(30)).await;
        self.up().await;
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.start_kill();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
