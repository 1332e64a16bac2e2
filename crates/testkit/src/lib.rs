//! # tonegate-testkit: what tonegate's tests, benches and demo share
//!
//! Dev-only (a dev-dependency of every crate that uses it, and of nothing in production):
//!
//! - [`tone`]: DTMF tone pairs and levels in dBm0, as 16-bit linear samples;
//! - [`phone`]: a simulated caller's RTP stream (PCMU audio, in-band tones, RFC 4733 key
//!   presses), as datagrams with their send times;
//! - [`capture`]: the same datagrams as captured frames (raw IPv4 + UDP), for replays.
//!
//! It holds no product logic: a helper here must never stand in for the code under test.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod capture;
pub mod phone;
pub mod tone;
