//! Processor connectors: where the card goes, and the only place it goes.
//!
//! A [`Processor`] charges a card (amount > 0) or tokenizes it (amount 0). Connectors live in
//! this crate because only this crate can read a [`SealedCard`]; the trait is sealed so no
//! connector can be added from outside. Callers use [`pay`], which picks charge or tokenize,
//! turns the connector's answer into a masked [`PaymentOutcome`], scrubs the processor's
//! message, and drops (zeroes) the card.
//!
//! Connectors, chosen by a [`ProcessorConfig`] (`type: sandbox | http | stripe`):
//! - [`sandbox::Sandbox`]: built in, the default, deterministic test cards, no network;
//! - `http::HttpProcessor`: a generic JSON connector for the customer's own gateway or vault
//!   (templated body, bearer/basic/HMAC auth, answer read by JSON pointers);
//! - `stripe::StripeProcessor`: the Stripe API (PaymentMethod, then a confirming
//!   PaymentIntent or SetupIntent).
//!
//! The two network connectors, `http` and `stripe`, exist only with the `connectors` cargo
//! feature (on by default), which also brings in their runtime and HTTP stack. Without it their
//! configurations still parse, and [`ProcessorConfig::build`] refuses them with
//! [`ProcessorConfigError::NotInThisBuild`].
//!
//! `docs/processors.md` describes each one's configuration, requests and answer mapping.

pub(crate) mod config;
#[cfg(feature = "connectors")]
pub(crate) mod http;
pub(crate) mod sandbox;
#[cfg(feature = "connectors")]
pub(crate) mod stripe;

pub use config::{
    HmacAuth, HttpAuth, HttpConfig, HttpMethod, ProcessorConfig, ProcessorConfigError,
    ResponseMapping, SandboxConfig, SignatureEncoding, StripeConfig,
};

use std::fmt;
use std::time::SystemTime;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::card::{PaymentView, SealedCard};
use zeroize::Zeroizing;

use crate::outcome::{sanitize, sanitize_id, FailedReason, PaymentOutcome};

/// An amount in the currency's minor units (cents for USD, yen for JPY).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct MinorUnits(pub u64);

/// An ISO 4217 alphabetic currency code (three upper-case letters). Whether the code is
/// assigned is checked by the voice payment function against its ISO 4217 table.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Currency([u8; 3]);

impl Currency {
    /// The code for `code`, upper-cased; `None` unless three ASCII letters.
    pub fn new(code: &str) -> Option<Currency> {
        let bytes = code.as_bytes();
        (bytes.len() == 3 && bytes.iter().all(u8::is_ascii_alphabetic)).then(|| {
            Currency([
                bytes[0].to_ascii_uppercase(),
                bytes[1].to_ascii_uppercase(),
                bytes[2].to_ascii_uppercase(),
            ])
        })
    }

    /// The code, upper case.
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).expect("ASCII letters")
    }
}

impl fmt::Debug for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What kind of token to create when tokenizing (amount 0).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TokenType {
    /// For one later charge.
    #[default]
    OneTime,
    /// For repeated charges (subscriptions).
    Reusable,
    /// A stored payment method.
    PaymentMethod,
}

impl TokenType {
    /// The configuration name.
    pub fn as_str(self) -> &'static str {
        match self {
            TokenType::OneTime => "one-time",
            TokenType::Reusable => "reusable",
            TokenType::PaymentMethod => "payment-method",
        }
    }
}

/// What to do with the card: from the start connection's response, never from the agent.
#[derive(Clone, Debug, PartialEq)]
pub struct PaymentRequest {
    /// The payment session's reference: the idempotency keys derive from it.
    pub session_reference: String,
    /// Amount to charge; 0 tokenizes.
    pub amount: MinorUnits,
    /// Currency of the amount.
    pub currency: Currency,
    /// Free text passed to the processor.
    pub description: Option<String>,
    /// Passed through to the processor untouched.
    pub processor_parameters: serde_json::Map<String, serde_json::Value>,
    /// The token to create when the amount is 0.
    pub token_type: Option<TokenType>,
}

impl PaymentRequest {
    /// Whether this request tokenizes rather than charges.
    pub fn is_tokenize(&self) -> bool {
        self.amount.0 == 0
    }

    /// The idempotency key for one step (`charge`, `payment-method`, ...) of this session's
    /// payment: the same session always sends the same key, so a retried request can never
    /// charge twice.
    pub fn idempotency_key(&self, step: &str) -> String {
        format!("tonegate-{}-{step}", self.session_reference)
    }
}

/// A processor said yes. Crate-private: only [`pay`] sees it, and turns it into a scrubbed
/// [`PaymentOutcome`]. Its `Debug` does not show the ids (not scrubbed yet).
#[derive(Clone, Default, PartialEq, Eq)]
pub(crate) struct Approval {
    /// The charge's id.
    pub(crate) transaction_id: Option<String>,
    /// The token or payment method's id.
    pub(crate) token_id: Option<String>,
}

/// A processor said no, or could not say. Crate-private: its text is the processor's, not yet
/// scrubbed (it may echo the card); only [`pay`] reads it. Its `Debug` shows the variant only.
#[derive(Clone, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// The card was declined: `code` is the processor's decline code.
    Declined {
        /// Decline code (`insufficient_funds`, `do_not_honor`, `expired_card`, ...).
        code: String,
        /// The processor's message (sanitized by [`pay`]).
        message: String,
    },
    /// The processor failed, answered something unreadable, or timed out. Never retried
    /// blindly: the processor may have charged.
    Error {
        /// What happened (sanitized by [`pay`]).
        message: String,
    },
}

impl fmt::Debug for Approval {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Approval")
            .field(
                "transaction_id",
                &self.transaction_id.as_ref().map(|_| "<unscrubbed>"),
            )
            .field("token_id", &self.token_id.as_ref().map(|_| "<unscrubbed>"))
            .finish()
    }
}

impl fmt::Debug for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Refusal::Declined { .. } => "Refusal::Declined { <unscrubbed> }",
            Refusal::Error { .. } => "Refusal::Error { <unscrubbed> }",
        })
    }
}

/// What a connector does with the card: crate-private, so code outside the crate can neither
/// implement it (which seals [`Processor`]) nor call `charge` or `tokenize`, not even on a
/// `dyn Processor` (the compiler answers "method `charge` is private"). The only way to reach
/// a connector is [`pay`], which drops the card after the answer and scrubs the answer's text.
#[async_trait]
pub(crate) trait Connector {
    /// Charges `request.amount` (> 0) to the card; `now` is the wall-clock time of the
    /// attempt (see [`pay`]).
    async fn charge(
        &self,
        card: &SealedCard,
        request: &PaymentRequest,
        now: SystemTime,
    ) -> Result<Approval, Refusal>;

    /// Tokenizes the card (`request.amount` is 0) as `request.token_type`; `now` as for
    /// [`Connector::charge`].
    async fn tokenize(
        &self,
        card: &SealedCard,
        request: &PaymentRequest,
        now: SystemTime,
    ) -> Result<Approval, Refusal>;
}

/// A payment processor connector, used only through [`pay`] (as `&dyn Processor`, or an
/// `Arc<dyn Processor>` shared by a gateway's calls). Sealed: its supertrait, which holds the
/// charge and tokenize steps, is crate-private, so only this crate's connectors (the only code
/// that can read a [`SealedCard`]) implement it, and no code outside the crate can charge a
/// card without `pay` and keep it (security code included) after an authorization.
// `private_bounds`: the crate-private supertrait is the point (see `Connector`).
#[allow(private_bounds)]
pub trait Processor: Connector + Send + Sync {
    /// The connector's name (`sandbox`, `http`, `stripe`).
    fn name(&self) -> &'static str;
}

/// Charges or tokenizes `card` through `processor`, and drops the card (its digits are zeroed).
/// The outcome is masked; a processor message has any of this card's data and any long digit
/// run removed.
///
/// `now` is the wall-clock time of this attempt, read by the caller: this crate reads no clock.
/// Connectors that put a time on the wire take it from here (the `http` connector's HMAC
/// timestamp header, which is also signed), so a test can fix it.
pub async fn pay(
    processor: &dyn Processor,
    card: SealedCard,
    request: &PaymentRequest,
    now: SystemTime,
) -> PaymentOutcome {
    let masked = card.masked();
    tracing::info!(
        processor = processor.name(),
        session = %request.session_reference,
        card = %masked,
        tokenize = request.is_tokenize(),
        "sending payment to processor"
    );
    let result = if request.is_tokenize() {
        processor.tokenize(&card, request, now).await
    } else {
        processor.charge(&card, request, now).await
    };
    let outcome = match result {
        Ok(approval) => PaymentOutcome::Succeeded {
            card: masked,
            transaction_id: approval
                .transaction_id
                .map(|id| sanitize_id(&scrub(&card, &id))),
            token_id: approval.token_id.map(|id| sanitize_id(&scrub(&card, &id))),
        },
        Err(Refusal::Declined { code, message }) => PaymentOutcome::Failed {
            card: masked,
            reason: FailedReason::PaymentDeclined,
            decline_code: Some(sanitize(&scrub(&card, &code))),
            message: sanitize(&scrub(&card, &message)),
        },
        Err(Refusal::Error { message }) => PaymentOutcome::Failed {
            card: masked,
            reason: FailedReason::ProcessorError,
            decline_code: None,
            message: sanitize(&scrub(&card, &message)),
        },
    };
    drop(card);
    tracing::info!(
        processor = processor.name(),
        session = %request.session_reference,
        outcome = ?outcome,
        "processor answered"
    );
    outcome
}

/// Removes every form of this card's own data from a processor's text (a message, a decline
/// code, an id): the number, the security and postal codes, the expiry as `MM/YY`, `MMYY`,
/// `MM/YYYY`, `YYYY-MM`, `M/YY` and their variants with `-`, `.`, `/` or a space, and for a
/// bank debit the account and routing numbers. Separated forms of the number (`4242 4242 ...`)
/// are left to the digit-run rule of [`sanitize`] and [`sanitize_id`], which runs after this.
///
/// Card data: the list of forms and each intermediate text are zeroed when dropped
/// (`docs/pci-boundary.md`, "where card data lives").
fn scrub(card: &SealedCard, text: &str) -> Zeroizing<String> {
    let mut secrets: Vec<Zeroizing<String>> = Vec::new();
    let mut add = |secret: &str| secrets.push(Zeroizing::new(secret.to_owned()));
    match card.expose() {
        PaymentView::Card(c) => {
            add(c.number);
            if let Some(code) = c.security_code {
                add(code);
            }
            if let Some(postal) = c.postal_code {
                add(postal);
            }
            let (mm, yyyy) = (c.expiry.month(), c.expiry.year());
            let yy = yyyy % 100;
            for separator in ["/", "-", ".", " "] {
                for form in [
                    format!("{mm:02}{separator}{yyyy}"),
                    format!("{mm}{separator}{yyyy}"),
                    format!("{mm:02}{separator}{yy:02}"),
                    format!("{mm}{separator}{yy:02}"),
                    format!("{yyyy}{separator}{mm:02}"),
                    format!("{yyyy}{separator}{mm}"),
                ] {
                    add(&Zeroizing::new(form));
                }
            }
            add(&Zeroizing::new(format!("{mm:02}{yy:02}")));
            add(&Zeroizing::new(format!("{mm:02}{yyyy}")));
            add(&Zeroizing::new(format!("{yyyy}{mm:02}")));
        }
        PaymentView::Bank(b) => {
            add(b.account_number);
            add(b.routing_number);
        }
    }
    // Longest first, so `07/2031` goes before `07/20` could cut it in two.
    secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
    let mut out = Zeroizing::new(text.to_owned());
    for secret in secrets.iter().filter(|s| s.len() >= 3) {
        if out.contains(secret.as_str()) {
            out = Zeroizing::new(out.replace(secret.as_str(), "[redacted]"));
        }
    }
    out
}
