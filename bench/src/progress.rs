//! Progress bars on the long phases (indicatif, on stderr; hidden when it is not a
//! terminal).

use indicatif::{ProgressBar, ProgressStyle};

/// A bar of `len` items of `what`.
pub fn bar(len: u64, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(len);
    if let Ok(style) = ProgressStyle::with_template(&format!(
        "    [{{elapsed_precise}}] {{bar:40}} {{pos}}/{{len}} {what}"
    )) {
        bar.set_style(style);
    }
    bar
}
