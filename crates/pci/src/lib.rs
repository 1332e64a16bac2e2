//! # tonegate-pci: the sealed PCI zone
//!
//! This crate will be the only code in tonegate that ever holds card digits. Key presses from
//! `tonegate-media` go in; masked events (field progress, brand and last four, outcomes) come
//! out; the assembled card goes to a payment processor connector and nowhere else.
//!
//! It will hold the per-session card collector (field by field, with retries and media-time
//! timeouts), card validation (Luhn, brand by IIN range, expiry, security and postal codes),
//! bank-payment fields, and the processor connectors. See `docs/pci-boundary.md` once it lands.
//!
//! Nothing is implemented yet: the foundation issue only reserves the crate and its place in
//! the dependency order `gateway -> control -> pci -> media`.
#![forbid(unsafe_code)]
#![warn(missing_docs)]
