//! # tonegate-control: the voice payment function
//!
//! The voice payment function (a product page describes it; `docs/config.md` is this
//! implementation's reference), end to end except the media and the card: it never sees a digit, only the masked events of
//! `tonegate-pci`.
//!
//! ```text
//!  function file (YAML/TOML) ──► config::Function (checked: schema, templates, URLs, limits)
//!                                      │
//!  agent invokes (params, refs, vars) ─┴─► session::Session ──► Output::Agent(AgentEvent)   (say, state, progress,
//!  start connection result ───────────────►   (sans-IO)     ──► Output::Connection           masked summary, outcome)
//!  pci CollectEvent (masked) ─────────────►                 ──► Output::Collector(command)  (start, success, failure)
//!  agent actions, payment outcome, hang-up►                 ──► Output::Pay(PaymentRequest)
//! ```
//!
//! The session is a state machine driven by [`session::Session::handle_input`] and drained
//! with [`session::Session::poll_output`]; the gateway performs the outputs (the HTTP calls to
//! the connections, in `tonegate::connection`; the PCI collector; `tonegate_pci::pay`) and
//! feeds the results back. This crate does no I/O: no sockets, no files, no clock.
//!
//! ```
//! use std::path::Path;
//! use std::sync::Arc;
//! use tonegate_control::config::{Format, Function};
//! use tonegate_control::session::{Input, Invocation, Output, Session, State};
//! use tonegate_pci::YearMonth;
//!
//! let yaml = "name: collect_payment\npurpose: Collect a card payment\n\
//!             connections:\n  start:\n    url: https://shop.example/payments/start\n";
//! let function = Arc::new(Function::from_str(yaml, Format::Yaml, Path::new("inline")).unwrap());
//! let today = YearMonth::new(2026, 11).unwrap();
//! let mut session = Session::new(function, "ps_1".into(), Invocation::default(), today);
//! while let Some(output) = session.poll_output() {
//!     if let Output::Connection { .. } = output { /* call the start connection */ }
//! }
//! let start = serde_json::json!({"amount": 4200, "currency": "USD"});
//! session.handle_input(Input::StartResult(Ok(start))).unwrap();
//! assert_eq!(session.state(), State::AwaitingAmountConfirmation);
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod config;
pub mod currency;
pub mod session;
pub mod start;
mod template;
pub mod tools;
