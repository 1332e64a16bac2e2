//! A panic cannot print card data: `tonegate::panic_hook` reports where and in which thread a
//! panic happened, with its message redacted, through the log (or stderr without one).
//!
//! A panic hook is the whole process's, so each case runs in a child process: this test
//! binary again, running one of the ignored `child_*` tests with `TONEGATE_PANIC_CHILD` set.
//! The child panics inside a spawned tokio task with a message holding a test card number
//! (as digits and spaced), a security code and an expiry; the parent reads its stderr and its
//! log file.

mod common;

use std::panic::Location;
use std::path::{Path, PathBuf};
use std::process::Output;

use common::{contains_digits, contains_token};

const PAN: &str = "4111111111111111";
const PAN_SPACED: &str = "4111 1111 1111 1111";
const CVV: &str = "739";
const EXPIRY: &str = "07/31";

/// Which child runs: the one the parent asked for, or none (a plain `cargo test -- --ignored`).
fn child_mode() -> Option<String> {
    std::env::var("TONEGATE_PANIC_CHILD").ok()
}

/// Panics with card data in the message, after printing (on stdout) the thread and the
/// location the panic will report: `#[track_caller]` makes both the caller's line.
#[track_caller]
fn pay_and_panic() -> ! {
    let thread = std::thread::current();
    println!("THREAD {}", thread.name().unwrap_or("<unnamed>"));
    println!("LOCATION {}", Location::caller());
    panic!("charging {PAN} (written {PAN_SPACED}) exp {EXPIRY} with security code {CVV} failed");
}

/// Runs a task that panics, and shows that the process goes on (tokio caught the panic).
fn panic_in_a_task() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let joined = runtime.block_on(async { tokio::spawn(async { pay_and_panic() }).await });
    assert!(joined.unwrap_err().is_panic());
    println!("JOINED");
}

#[test]
#[ignore = "a child process of the tests below"]
fn child_with_a_log() {
    if child_mode().as_deref() != Some("log") {
        return;
    }
    // As `tonegate serve` logs (a global fmt subscriber), to a file instead of stderr so that
    // the two are read apart.
    let file = std::fs::File::create(std::env::var("TONEGATE_PANIC_LOG").unwrap()).unwrap();
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(std::sync::Mutex::new(file))
        .with_ansi(false)
        .init();
    tonegate::panic_hook::install();
    panic_in_a_task();
}

#[test]
#[ignore = "a child process of the tests below"]
fn child_without_a_log() {
    if child_mode().as_deref() != Some("stderr") {
        return;
    }
    tonegate::panic_hook::install();
    panic_in_a_task();
}

#[test]
#[ignore = "a child process of the tests below"]
fn child_with_the_default_hook() {
    if child_mode().as_deref() != Some("default") {
        return;
    }
    panic_in_a_task();
}

/// Runs `test` of this binary in a child process with `TONEGATE_PANIC_CHILD=mode`: its output
/// and the thread and location its panic reports.
fn run_child(test: &str, mode: &str, log: Option<&Path>) -> (Output, String, String) {
    let mut command = std::process::Command::new(std::env::current_exe().unwrap());
    command
        .args([
            test,
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("TONEGATE_PANIC_CHILD", mode)
        // A backtrace's line numbers could hold the three digits of the security code.
        .env_remove("RUST_BACKTRACE")
        .env_remove("RUST_LIB_BACKTRACE");
    if let Some(log) = log {
        command.env("TONEGATE_PANIC_LOG", log);
    }
    let output = command.output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success() && stdout.contains("JOINED"),
        "the child ran to its end: {stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // libtest may have started the child's line with `test child_... ... `.
    let printed = |what: &str| {
        stdout
            .lines()
            .find_map(|l| l.split_once(what).map(|(_, value)| value.to_owned()))
            .unwrap_or_else(|| panic!("the child printed no {what}: {stdout}"))
    };
    let (thread, location) = (printed("THREAD "), printed("LOCATION "));
    assert!(location.contains("panic_hook.rs:"), "{location}");
    assert_ne!(thread, "main", "the panic was in a runtime's worker");
    (output, thread, location)
}

/// Whether `text` holds the card number (with or without separators), the expiry or the
/// security code.
fn card_data_in(text: &str) -> Option<&'static str> {
    if contains_digits(text.as_bytes(), PAN) {
        return Some("the card number");
    }
    [EXPIRY, CVV]
        .into_iter()
        .find(|secret| contains_token(text, secret))
}

fn log_path(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("tonegate-{name}-{}.log", std::process::id()))
}

#[test]
fn a_panic_in_a_task_is_logged_with_its_location_and_without_card_data() {
    let log = log_path("panic-hook");
    let (output, thread, location) = run_child("child_with_a_log", "log", Some(&log));
    let logs = std::fs::read_to_string(&log).unwrap();
    let _ = std::fs::remove_file(&log);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let report = logs
        .lines()
        .find(|l| l.contains("panicked"))
        .unwrap_or_else(|| panic!("no panic report in the log: {logs}"));
    assert!(report.contains("ERROR"), "{report}");
    assert!(report.contains(&format!("location={location}")), "{report}");
    assert!(report.contains(&format!("thread={thread}")), "{report}");
    assert!(
        report.contains(
            "charging [redacted] (written [redacted]) exp [redacted] with security code [redacted] failed"
        ),
        "the message, redacted: {report}"
    );
    assert_eq!(card_data_in(&logs), None, "in the log: {logs}");
    assert_eq!(card_data_in(&stderr), None, "on stderr: {stderr}");
    assert!(
        !stderr.contains("panicked"),
        "the default hook did not run: {stderr}"
    );
}

#[test]
fn without_a_log_the_redacted_report_goes_to_stderr() {
    let (output, thread, location) = run_child("child_without_a_log", "stderr", None);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!("thread '{thread}' panicked at {location}:")),
        "{stderr}"
    );
    assert!(stderr.contains("[redacted]"), "{stderr}");
    assert_eq!(card_data_in(&stderr), None, "on stderr: {stderr}");
}

/// What the hook is for: the default one prints the message as it is.
#[test]
fn the_default_hook_would_print_the_card() {
    let (output, _, location) = run_child("child_with_the_default_hook", "default", None);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains(&location), "{stderr}");
    assert_eq!(card_data_in(&stderr), Some("the card number"), "{stderr}");
}

/// The binary installs the hook before anything else runs, for every command.
#[test]
fn main_installs_the_hook_first() {
    let main = std::fs::read_to_string(common::root().join("crates/gateway/src/main.rs")).unwrap();
    let body = main
        .split_once("fn main() -> ExitCode {")
        .expect("main.rs has `fn main`")
        .1;
    let first = body
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with("//"))
        .unwrap();
    assert_eq!(first, "tonegate::panic_hook::install();");
}
