//! The modules of the `tonegate` binary that `tonegate serve` is built from, as a library so
//! that integration tests (`tests/`) reach them.
//!
//! - [`outbox`]: the durable outbox that delivers success and failure connections.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod outbox;
