//! The process's panic hook: a panic's report without card data.
//!
//! The default hook prints a panic's message on stderr, and a message can format anything: a
//! value in `panic!("{x}")`, both sides of an `assert_eq!`, the error an `expect` unwraps, in
//! any thread (a call task, a processor request, a blocking database task). tokio catches the
//! panic of a spawned task, but the hook runs first, in the panicking thread, so every panic of
//! the process goes through it. [`install`] replaces it with [`report`]: where the panic
//! happened (file, line, column) and in which thread, with the message passed through
//! [`tonegate_pci::redact_digit_runs`] (every run of three digits or more goes: card numbers,
//! security codes, expiry dates, postal codes, bank numbers), as one `tracing` event at ERROR
//! level; on stderr instead when no subscriber would record it (`tonegate demo` and the offline
//! tools install none). A backtrace, when `RUST_BACKTRACE` asks for one, is added: it holds
//! function names, files and lines, no values.

use std::backtrace::{Backtrace, BacktraceStatus};
use std::panic::PanicHookInfo;

/// Replaces the process's panic hook with [`report`]. `tonegate`'s `main` calls it first, for
/// every command; a program that starts a [`crate::serve::Gateway`] itself calls it too.
pub fn install() {
    std::panic::set_hook(Box::new(report));
}

/// Reports a panic: location, thread and the redacted message (and a backtrace when
/// `RUST_BACKTRACE` is set), through `tracing` at ERROR, or on stderr without a subscriber.
pub fn report(info: &PanicHookInfo<'_>) {
    // A payload that is not text (`std::panic::panic_any`) is named, not shown, as by the
    // default hook.
    let payload = info.payload();
    let message = payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .map_or_else(
            || "Box<dyn Any>".to_owned(),
            tonegate_pci::redact_digit_runs,
        );
    let location = info
        .location()
        .map_or_else(|| "an unknown location".to_owned(), ToString::to_string);
    let current = std::thread::current();
    let thread = current
        .name()
        .map_or_else(|| format!("{:?}", current.id()), str::to_owned);
    let backtrace = Backtrace::capture();
    let backtrace = (backtrace.status() == BacktraceStatus::Captured).then_some(backtrace);
    if tracing::dispatcher::has_been_set() && tracing::enabled!(tracing::Level::ERROR) {
        match &backtrace {
            Some(backtrace) => tracing::error!(
                %thread,
                %location,
                %backtrace,
                "panicked: {message}"
            ),
            None => tracing::error!(%thread, %location, "panicked: {message}"),
        }
    } else {
        eprintln!("thread '{thread}' panicked at {location}:\n{message}");
        if let Some(backtrace) = backtrace {
            eprintln!("stack backtrace:\n{backtrace}");
        }
    }
}
