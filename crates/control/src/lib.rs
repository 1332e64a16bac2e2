//! # tonegate-control: the voice payment function
//!
//! This crate will hold the voice payment function described in the product page
//! (`shared/seed/voice-payment-function.txt`): the function's configuration (input schema,
//! Set variables as Jinja2 templates, start/success/failure connections, messages, limits),
//! the sans-IO session state machine (`starting`, `awaiting_amount_confirmation`, `collecting`,
//! `paused`, `awaiting_card_confirmation`, `processing`, `succeeded`, `failed`, `cancelled`),
//! and the agent-side events.
//!
//! It never sees a raw digit: it may only name the masked types that `tonegate-pci` exports.
//! Nothing is implemented yet; the foundation issue only reserves the crate.
#![forbid(unsafe_code)]
#![warn(missing_docs)]
