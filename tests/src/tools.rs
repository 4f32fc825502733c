//! The programs some tests run besides the services (promtool, node, chromium): found on
//! `PATH` or where deploy/tools.sh puts them when not run as root (`target/tools/bin`). A
//! missing one skips its test on a developer's machine, saying so, and fails it in CI
//! (`CI=true`): a test that silently does not run guards nothing.

use std::path::{Path, PathBuf};

/// Where deploy/tools.sh installs tools when it cannot write to /usr/local/bin.
pub fn tools_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/tools/bin")
}

/// The path of `program`: on `PATH`, else in [`tools_dir`].
pub fn find(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([tools_dir()])
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
}

/// Whether this run is CI's, where nothing may be skipped.
pub fn in_ci() -> bool {
    std::env::var("CI").as_deref() == Ok("true")
}

/// Called by a test that cannot run without `missing` (each with how to install it): fails
/// the test in CI, else prints why it is skipped; the test then returns.
pub fn skip_without(test: &str, missing: &[&str]) {
    let message = format!(
        "{test} needs {}; deploy/tools.sh installs them (deploy/test.sh runs it)",
        missing.join(", ")
    );
    assert!(!in_ci(), "{message}");
    eprintln!("SKIPPED: {message}");
}
