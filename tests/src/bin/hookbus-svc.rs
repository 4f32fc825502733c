//! Runs one hookbus service as a child process, for the tests that `kill -9` a process
//! mid-stream: `hookbus-svc router|deliverer|producer [flags]`, configured like the real
//! binaries (environment variables and flags).

use clap::Parser;
use hookbus_contracts::ops;

#[tokio::main]
async fn main() {
    let mut args: Vec<String> = std::env::args().collect();
    let role = args.remove(1);
    args[0] = role.clone();
    let listener = |addr: &str| {
        let addr = addr.to_owned();
        async move { tokio::net::TcpListener::bind(addr).await.expect("bind") }
    };
    let shutdown = ops::shutdown_on_signal();
    let result = match role.as_str() {
        "router" => {
            let c = hookbus_router::Config::parse_from(args);
            hookbus_router::run(c.clone(), listener(&c.listen).await, shutdown)
                .await
                .map_err(|e| e.to_string())
        }
        "deliverer" => {
            let c = hookbus_deliverer::Config::parse_from(args);
            hookbus_deliverer::run(c.clone(), listener(&c.listen).await, shutdown)
                .await
                .map_err(|e| e.to_string())
        }
        other => Err(format!("unknown role {other}")),
    };
    if let Err(err) = result {
        eprintln!("{role}: {err}");
        std::process::exit(1);
    }
}
