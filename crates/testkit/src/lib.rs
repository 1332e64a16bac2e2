//! # tonegate-testkit: what tonegate's tests, benches and demo share
//!
//! Dev-only (a dev-dependency of every crate that uses it, and of nothing in production):
//!
//! - [`tone`]: DTMF tone pairs and levels in dBm0, as 16-bit linear samples;
//! - [`rtp`]: RTP packets with the header fields a test chooses;
//! - [`phone`]: a simulated caller's RTP stream (PCMU audio, in-band tones, RFC 4733 key
//!   presses), as datagrams with their send times;
//! - [`capture`]: the same datagrams as captured frames (raw IPv4 + UDP), for replays;
//! - [`caller`]: a phone on a real UDP socket, sending RTP to a running gateway;
//! - [`agent`]: the agent side over the gateway's HTTP API and event stream;
//! - [`ng`]: a SIP proxy's side of the ng protocol (an rtpengine client), with its own bencode;
//! - [`standin`]: stand-ins for the customer's endpoints, a real HTTP server on 127.0.0.1;
//! - [`logs`]: log capture for the leak tests (a `tracing_subscriber` writer and subscriber);
//! - [`cards`]: valid test card numbers, generated (inputs, never the oracle of a pci test).
//!
//! It holds no product logic: a helper here must never stand in for the code under test. The
//! binary links it for `tonegate demo` only (its stand-ins and simulated caller); the service
//! (`tonegate::serve`, the outbox) never names it.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod agent;
pub mod caller;
pub mod capture;
pub mod cards;
pub mod logs;
pub mod ng;
pub mod phone;
pub mod rtp;
pub mod standin;
pub mod tone;
