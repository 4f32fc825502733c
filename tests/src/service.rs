//! One hookbus service in a process of its own, configured like the real binaries (flags
//! and environment variables): the tests that `kill -9` or SIGTERM a process run it as
//! `hookbus-svc <role>`, and the benchmark re-runs itself as `bench service <role>` to
//! measure a service's own memory and CPU.

use std::ffi::OsStr;
use std::process::Stdio;
use std::time::Duration;

use clap::Parser;
use hookbus_runtime::ops;
use tokio::process::Command;

use crate::pipeline::ADMIN_TOKEN;

/// The roles [`run`] knows.
pub const ROLES: &str = "router|deliverer";

/// Runs `role` (`router` or `deliverer`) until SIGTERM or SIGINT, or the router's operator
/// command if the flags name one; `args[0]` is the program name, the rest its flags.
pub async fn run(role: &str, args: Vec<String>) -> Result<(), String> {
    let bind = |addr: String| async move {
        tokio::net::TcpListener::bind(&addr)
            .await
            .map_err(|e| format!("binding {addr}: {e}"))
    };
    let shutdown = ops::shutdown_on_signal();
    match role {
        "router" => {
            let c = hookbus_router::Config::try_parse_args(args).unwrap_or_else(|e| e.exit());
            if let Some(command) = &c.command {
                return hookbus_router::run_command(&c.common, &c.activity, command)
                    .await
                    .map_err(|e| e.to_string());
            }
            let listener = bind(c.listen.clone()).await?;
            hookbus_router::run(c, listener, shutdown)
                .await
                .map_err(|e| e.to_string())
        }
        "deliverer" => {
            let c = hookbus_deliverer::Config::parse_from(args);
            let listener = bind(c.listen.clone()).await?;
            hookbus_deliverer::run(c, listener, shutdown)
                .await
                .map_err(|e| e.to_string())
        }
        other => Err(format!("unknown role `{other}`: one of {ROLES}")),
    }
}

/// The retry schedule of a child service: the cleanup of its prefix deletes these tiers.
pub const RETRY_SCHEDULE: [Duration; 1] = [Duration::from_secs(1)];

/// `program args…` (`args` ending with the role) with the test setup's environment for
/// `prefix`: the test admin token, plain HTTP and loopback endpoints allowed, a one-second
/// retry, warnings only, and a free port for `/metrics` unless the caller sets
/// `HOOKBUS_*_LISTEN`. The child is killed if its handle is dropped, so a failing test or
/// run leaves none behind.
pub fn command(program: impl AsRef<OsStr>, args: &[&str], prefix: &str) -> Command {
    let mut command = Command::new(program);
    command
        .args(args)
        .env("HOOKBUS_PREFIX", prefix)
        .env("HOOKBUS_ADMIN_TOKEN", ADMIN_TOKEN)
        .env("HOOKBUS_ALLOW_HTTP", "true")
        .env("HOOKBUS_ALLOW_PRIVATE_TARGETS", "true")
        .env("HOOKBUS_ROUTER_LISTEN", "127.0.0.1:0")
        .env("HOOKBUS_DELIVERER_LISTEN", "127.0.0.1:0")
        .env(
            "HOOKBUS_RETRY_SCHEDULE",
            format!("{}s", RETRY_SCHEDULE[0].as_secs()),
        )
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .kill_on_drop(true);
    command
}
