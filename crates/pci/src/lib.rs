//! # tonegate-pci: the sealed PCI zone
//!
//! The only code in tonegate that ever holds card digits. Key presses go in; masked events and
//! outcomes come out; the card goes to the processor and nowhere else.
//!
//! ```text
//!   Key + media time ──► Collector ──► CollectEvent (masked: field, digit count, brand, errors,
//!   (from tonegate-media)   │                          brand + last four, end reason)
//!                           │ take_card()
//!                           ▼
//!                      SealedCard ──► pay(processor, card, request, now) ──► PaymentOutcome (masked)
//!                      (opaque)            │ zeroed on drop
//!                                          ▼
//!                                   Processor (sealed trait: sandbox, http, stripe)
//! ```
//!
//! Every way in and out is in this file's re-exports: [`Collector`] (sans-IO: `start`,
//! `handle_key`, `handle_timeout`/`poll_timeout` on media time, `poll_event`, `pause`,
//! `resume`, `different_card`, `cancel`, `take_card`), the masked types it reports
//! ([`CollectEvent`], [`MaskedCard`], [`Field`], [`CollectionError`], [`FailedReason`]),
//! the opaque [`SealedCard`], and [`pay`] with the [`Processor`] connectors; and
//! [`redact_digit_runs`], the zone's rule for digits in text that should hold none (the
//! gateway's panic reports), which reads no card. `docs/pci-boundary.md` is the auditor's
//! guide.
//!
//! ## Cargo feature `connectors` (default)
//!
//! The network connectors, `HttpProcessor` and `StripeProcessor`, and the dependencies only
//! they need: tokio (their runtime, also the sandbox's simulated timeout), reqwest (with hyper
//! and rustls), minijinja, hmac, sha2, base64, bytes and form_urlencoded. Without the feature
//! the crate is the collector, the sealed card, [`pay`] and the in-process sandbox (whose
//! timing-out test card then answers at once), with no async runtime and no network library;
//! `http` and `stripe` configurations still parse, and [`ProcessorConfig::build`] refuses them
//! ([`ProcessorConfigError::NotInThisBuild`]). `tonegate-control` uses the crate without it;
//! the `tonegate` binary turns it on. An auditor checks with
//! `cargo tree -p tonegate-pci -e normal --no-default-features`.
//!
//! ```
//! use tonegate_media::{ClockRate, Key, MediaTime};
//! use tonegate_pci::{CollectEvent, Collector, CollectorConfig, YearMonth};
//!
//! let at = |ms: u64| MediaTime::new(ms * 8, ClockRate::NARROWBAND);
//! let mut config = CollectorConfig::new(YearMonth::new(2026, 11).unwrap());
//! config.security_code_required = false;
//! config.postal_code_required = false;
//! let mut collector = Collector::new(config).unwrap();
//! collector.start(at(0));
//! for (i, c) in "4242424242424242#1230".chars().enumerate() {
//!     collector.handle_key(at(1000 + 300 * i as u64), Key::from_char(c).unwrap());
//! }
//! let mut ready = None;
//! while let Some(event) = collector.poll_event() {
//!     if let CollectEvent::CardReady { card } = event {
//!         ready = Some(card.to_string());
//!     }
//! }
//! assert_eq!(ready.as_deref(), Some("visa ending 4242"));
//! assert!(collector.take_card().is_some());
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod aba;
mod brand;
mod card;
mod collector;
mod expiry;
mod luhn;
mod outcome;
mod processor;
mod secret;

pub use brand::{Brand, UnknownBrand};
pub use card::{MaskedCard, PaymentType, SealedCard};
pub use collector::{
    CollectEvent, CollectionError, Collector, CollectorConfig, CollectorState, ConfigError, Field,
    StarKey,
};
pub use expiry::YearMonth;
pub use outcome::{redact_digit_runs, FailedReason, PaymentOutcome};
pub use processor::sandbox::Sandbox;
#[cfg(feature = "connectors")]
pub use processor::{
    http::HttpProcessor,
    stripe::{StripeProcessor, CUSTOMER_PARAMETER as STRIPE_CUSTOMER_PARAMETER},
};
pub use processor::{pay, Currency, MinorUnits, PaymentRequest, Processor, TokenType};
pub use processor::{
    HmacAuth, HttpAuth, HttpConfig, HttpMethod, ProcessorConfig, ProcessorConfigError,
    ResponseMapping, SandboxConfig, SignatureEncoding, StripeConfig,
};
