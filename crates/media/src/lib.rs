//! # tonegate-media: the sans-IO media core
//!
//! Everything tonegate hears of a call passes through this crate: RTP packets, RFC 4733
//! telephone-events, and G.711/L16 audio and WAV files for in-band DTMF detection
//! ([`inband`], with [`goertzel`], [`g711`], [`audio`], [`wav`]); [`dedup`] makes the two
//! sources one digit stream, and [`listener`] joins them into the one listening path that a
//! capture replay ([`replay`]) and a live call (the `tonegate-call` crate) both run.
//!
//! ```text
//!  pcap/pcapng bytes ──► capture::CaptureReader ──► Frame ──► replay::Replay ──► ReplayPress
//!                                                   (udp: link layers, IP, UDP;       ▲
//!                                                    RTP flows, SDP)                  │
//!  live UDP (a call) ─────────────────────► RTP packet ──► listener::Listener ────────┴──► ListenerEvent
//!                                  (one flow) │ rfc4733::Rfc4733Decoder (red: RFC 2198 unwrapped)
//!                                             │ audio::AudioStream ──► inband::InbandDetector
//!                                             └ dedup::PressMerger (one press per tone sent both ways)
//!  WAV bytes ──► wav::read_wav ──────────────────────────────────────────► inband::InbandDetector
//! ```
//!
//! What this crate must never do: read a socket, a file or a clock (packets, bytes and their
//! arrival time go in as arguments, typed events come out, so a pcap replay, a WAV replay and a
//! live call run the same code, deterministically), hold process-wide settings (the Goertzel
//! kernel is a field of [`inband::InbandConfig`]), or show a key in `Debug`.
//!
//! Three clocks are kept apart: `now` ([`std::time::Instant`], wall clock, only as a fallback
//! when media stops), media time ([`time::MediaTime`]: the RTP timestamp extended to 64 bits,
//! with its clock rate), and capture time (pcap timestamps, for reports).
//!
//! The loop every user of the decoder runs:
//!
//! ```
//! use std::time::Instant;
//! use tonegate_media::rfc4733::{DecoderConfig, DecoderEvent, Rfc4733Decoder};
//!
//! let mut decoder = Rfc4733Decoder::new(DecoderConfig::default());
//! let packets: Vec<(Instant, Vec<u8>)> = Vec::new(); // from a socket or a capture
//! for (arrival, packet) in &packets {
//!     if let Some(deadline) = decoder.poll_timeout() {
//!         if deadline <= *arrival {
//!             decoder.handle_timeout(*arrival);
//!         }
//!     }
//!     if let Err(e) = decoder.handle_packet(*arrival, packet) {
//!         eprintln!("packet refused: {e}");
//!     }
//!     while let Some(event) = decoder.poll_event() {
//!         if let DecoderEvent::Press { press, .. } = event {
//!             // A key press is card data: hand `press.key()` to the PCI zone only.
//!             let _ = press;
//!         }
//!     }
//! }
//! decoder.finish();
//! ```
//!
//! Key presses are card data while a payment is collected: [`key::Key`] and [`key::KeyPress`]
//! redact the key in `Debug`, and only an explicit accessor reveals it.
// One `unsafe` call, after a CPU feature check: the AVX2 + FMA Goertzel kernel (goertzel.rs,
// docs/inband.md). Everything else in the crate is safe Rust.
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod audio;
pub mod capture;
pub mod dedup;
pub mod extend;
pub mod g711;
pub mod gather;
pub mod goertzel;
pub mod inband;
pub mod key;
pub mod listener;
pub mod red;
pub mod replay;
pub mod rfc4733;
pub mod scrub;
pub mod sdp;
pub mod time;
pub mod udp;
pub mod wav;

pub use key::{Dbm0, Key, KeyPress, Source};
pub use time::{ClockRate, MediaDuration, MediaTime, Millis};
