//! Shared by the gateway's tests: the workspace root, the `tonegate` binary run in it, and a
//! token search for the leak tests.
#![allow(dead_code)] // each test file uses a different part

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The workspace root: fixtures, examples and docs are found from it.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The `tonegate` binary under test, to run in the workspace root.
pub fn tonegate_command() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_tonegate"));
    command.current_dir(root());
    command
}

/// Runs `tonegate ARGS` in the workspace root and waits for its output. The tests read the
/// keys of test fixtures, so `replay` gets `--show-keys` (digits are masked by default:
/// `fixtures.rs::digits_are_masked_unless_asked_for`).
pub fn tonegate(args: &[&str]) -> Output {
    let show: &[&str] = if args.first() == Some(&"replay") {
        &["--show-keys"]
    } else {
        &[]
    };
    tonegate_command()
        .args(args)
        .args(show)
        .output()
        .expect("tonegate runs")
}

/// Whether `needle` stands on its own in `text` (not inside a longer word or hex id, where
/// three or four digits occur by chance).
pub fn contains_token(text: &str, needle: &str) -> bool {
    let bytes = text.as_bytes();
    text.match_indices(needle).any(|(i, _)| {
        let before = i.checked_sub(1).map(|j| bytes[j]);
        let after = bytes.get(i + needle.len()).copied();
        !before.is_some_and(|b| b.is_ascii_alphanumeric())
            && !after.is_some_and(|b| b.is_ascii_alphanumeric())
    })
}
