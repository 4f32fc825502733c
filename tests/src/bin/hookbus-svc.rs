//! Runs one hookbus service as a child process, for the tests that `kill -9` a process
//! mid-stream: `hookbus-svc router|deliverer [flags]` (see `hookbus_tests::service`).

// The services' allocator, as in their own binaries.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() {
    let mut args: Vec<String> = std::env::args().collect();
    let role = args.remove(1);
    args[0] = role.clone();
    if let Err(err) = hookbus_tests::service::run(&role, args).await {
        eprintln!("{role}: {err}");
        std::process::exit(1);
    }
}
