//! Runs one hookbus service as a child process, for the tests that `kill -9` a process
//! mid-stream or read what it logs: `hookbus-svc router|deliverer [flags]` (see
//! `hookbus_tests::service`). It logs like the real binaries.

use hookbus_runtime::ops;
use hookbus_tests::service::ROLES;

// The services' allocator, as in their own binaries.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() {
    let mut args: Vec<String> = std::env::args().collect();
    let role = match args.get(1).map(String::as_str) {
        Some("-h" | "--help" | "help") => return println!("{}", usage()),
        None => {
            eprintln!("{}", usage());
            std::process::exit(2);
        }
        Some(role) => role.to_owned(),
    };
    args.remove(1);
    args[0] = role.clone();
    ops::init_tracing();
    if let Err(err) = hookbus_tests::service::run(&role, args).await {
        eprintln!("{role}: {err}");
        std::process::exit(1);
    }
}

fn usage() -> String {
    format!(
        "hookbus-svc: one hookbus service in a process of its own, for the tests (the \
         installed binaries are `router` and `deliverer`)\n\n\
         Usage: hookbus-svc <{ROLES}> [flags]   (`hookbus-svc <role> --help` lists them)"
    )
}
