//! A script written against Logto's hooks API (`tests/logto-script/hooks-admin.mjs`:
//! create, test, list with stats, recent logs, rotate the key, disable, delete) runs
//! unchanged against hookbus. It needs Node.js 18+ (global `fetch`), which deploy/tools.sh
//! installs; where `node` is missing the test is skipped, or fails when CI=true.

use std::process::Stdio;

use hookbus_tests::pipeline::ADMIN_TOKEN;
use hookbus_tests::{tools, Pipeline, Receiver};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_logto_hooks_script_runs_unchanged() {
    let Ok(version) = std::process::Command::new("node").arg("--version").output() else {
        tools::skip_without("the Logto script", &["node (apt-get install nodejs)"]);
        return;
    };
    eprintln!("node {}", String::from_utf8_lossy(&version.stdout).trim());
    let p = Pipeline::start("logto-script").await;
    let receiver = Receiver::start().await;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/logto-script/hooks-admin.mjs");
    let output = tokio::process::Command::new("node")
        .arg(script)
        .env("LOGTO_ENDPOINT", format!("http://{}", p.router.addr))
        .env("LOGTO_M2M_TOKEN", ADMIN_TOKEN)
        .env("RECEIVER_URL", receiver.url("crm"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .await
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
    );
    assert!(
        output.status.success(),
        "the Logto script failed:\n{stdout}\n{stderr}"
    );
    assert!(stdout.starts_with("OK "), "{stdout}");
    assert_eq!(
        receiver.received().len(),
        1,
        "the script's test send arrived"
    );
    p.stop().await;
}
