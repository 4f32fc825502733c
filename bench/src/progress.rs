//! Progress bars on the long phases (indicatif, on stderr; hidden when it is not a
//! terminal).

use indicatif::{ProgressBar, ProgressStyle};

/// A bar of `len` items of `what`.
pub fn bar(len: u64, what: &str) -> ProgressBar {
    styled(len, &format!("{{pos}}/{{len}} {what}"))
}

/// A bar of `len` items of `what`, with a message that changes as it runs (the phase).
pub fn bar_with_message(len: u64, what: &str) -> ProgressBar {
    styled(len, &format!("{{pos}}/{{len}} {what}: {{msg}}"))
}

fn styled(len: u64, tail: &str) -> ProgressBar {
    let bar = ProgressBar::new(len);
    if let Ok(style) =
        ProgressStyle::with_template(&format!("    [{{elapsed_precise}}] {{bar:40}} {tail}"))
    {
        bar.set_style(style);
    }
    bar
}
