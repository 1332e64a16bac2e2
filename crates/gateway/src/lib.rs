//! The `tonegate` gateway: the only crate with sockets, tasks and clocks. Its library holds
//! what the binary's commands share and what the tests drive directly; `main.rs` is the CLI.

pub mod call;
pub mod clock;
pub mod demo;
pub mod metrics;
pub mod outbox;
pub mod sdp;
pub mod serve;
