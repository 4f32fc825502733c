//! The scripts a newcomer runs first: the test command's last line says what happened (the
//! totals, a failed build, or that no test ran, with a stand-in `cargo`), and the demo's
//! closing report gives what the README's examples need.

use super::files::*;

/// `deploy/test.sh` with a stand-in `cargo` that prints `output` and exits with `code`:
/// the script's exit code and its last line.
fn test_command_with(output: &str, code: i32) -> (i32, String) {
    let bin = std::env::temp_dir().join(format!("hookbus-fake-cargo-{}", uuid::Uuid::now_v7()));
    std::fs::create_dir_all(&bin).unwrap();
    let cargo = bin.join("cargo");
    std::fs::write(
        &cargo,
        format!("#!/bin/sh\ncat <<'OUT'\n{output}OUT\nexit {code}\n"),
    )
    .unwrap();
    std::fs::set_permissions(&cargo, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let run = std::process::Command::new("bash")
        .arg(deploy_path("test.sh"))
        .env("PATH", path)
        .output()
        .expect("bash runs deploy/test.sh");
    std::fs::remove_dir_all(&bin).unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout).into_owned();
    let last = stdout.lines().last().unwrap_or_default().to_owned();
    (run.status.code().unwrap_or(-1), last)
}

#[test]
fn the_test_command_says_when_the_build_failed_or_no_test_ran() {
    let (code, last) = test_command_with(
        "error[E0425]: cannot find value `x` in this scope\n\
         error: could not compile `hookbus-router` (lib) due to 1 previous error\n",
        101,
    );
    assert_eq!(code, 101, "{last}");
    assert!(
        last.contains("build failed") && last.contains("hookbus-router"),
        "{last}"
    );

    let none = "test result: ok. 0 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out\n";
    let (code, last) = test_command_with(none, 0);
    assert_ne!(code, 0, "no test ran, yet it passed: {last}");
    assert!(last.contains("no test ran"), "{last}");

    let some = "test result: ok. 3 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out\n\
                test result: FAILED. 2 passed; 1 failed; 0 ignored; 0 measured; 0 filtered out\n";
    let (code, last) = test_command_with(some, 101);
    assert_eq!((code, last.as_str()), (101, "total: 5 passed, 1 failed"));
}

#[test]
fn the_demo_report_gives_what_the_readme_examples_need() {
    let demo = read("demo.sh");
    let report: String = demo
        .lines()
        .filter(|l| l.trim_start().starts_with("echo "))
        .collect::<Vec<_>>()
        .join("\n");
    let export = report
        .lines()
        .find(|l| l.contains("export "))
        .expect("an export line to paste");
    for var in [
        "HOOKBUS_INGEST_TOKEN",
        "HOOKBUS_ADMIN_TOKEN",
        "HOOKBUS_PREFIX",
    ] {
        assert!(export.contains(&format!("{var}=${var}")), "{var}: {export}");
    }
    for port in [7801, 7802, 7803, 7804] {
        let url = format!("http://127.0.0.1:{port}/metrics");
        assert!(report.contains(&url), "{url} is not in the report");
    }
    assert!(
        report.contains("http://127.0.0.1:7802/console"),
        "the report does not give the console's URL"
    );
    for var in ["HOOKBUS_ALLOW_HTTP", "HOOKBUS_ALLOW_PRIVATE_TARGETS"] {
        assert!(
            report.contains(var),
            "the report does not say the demo sets {var}"
        );
    }
}
