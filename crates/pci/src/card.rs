//! The assembled card (sealed) and what may be said of it (masked).

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::brand::Brand;
use crate::expiry::YearMonth;
use crate::secret::SecretDigits;

/// How the caller pays, named as in `allowed_payment_types`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PaymentType {
    /// A payment card: number, expiry, and the security and postal codes when required.
    CreditCard,
    /// A US bank debit: routing and account numbers.
    AchDebit,
}

impl PaymentType {
    /// The configuration name: `credit-card` or `ach-debit`.
    pub fn as_str(self) -> &'static str {
        match self {
            PaymentType::CreditCard => "credit-card",
            PaymentType::AchDebit => "ach-debit",
        }
    }
}

/// What may be said of a card outside the PCI zone: its brand and last four digits (for a bank
/// account, the last four of the account number).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MaskedCard {
    /// Card or bank debit.
    pub payment_type: PaymentType,
    /// The card's brand; `None` for a bank account or a card whose IIN is in no known range.
    pub brand: Option<Brand>,
    /// The last four digits.
    pub last4: String,
}

impl fmt::Display for MaskedCard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.payment_type, self.brand) {
            (PaymentType::AchDebit, _) => write!(f, "bank account ending {}", self.last4),
            (PaymentType::CreditCard, Some(brand)) => write!(f, "{brand} ending {}", self.last4),
            (PaymentType::CreditCard, None) => write!(f, "card ending {}", self.last4),
        }
    }
}

pub(crate) enum Sealed {
    Card {
        number: SecretDigits,
        /// MMYYYY: the validated expiry with its century resolved.
        expiry: SecretDigits,
        security_code: Option<SecretDigits>,
        postal_code: Option<SecretDigits>,
        brand: Option<Brand>,
    },
    Bank {
        routing_number: SecretDigits,
        account_number: SecretDigits,
    },
}

/// A collected, validated card (or bank account), sealed: code outside this crate can hold it
/// and hand it to [`crate::pay`], nothing else. It does not implement `Debug` (beyond a fixed
/// redacted text), `Display`, `Clone` or `Serialize`, and its digits are zeroed when it is
/// dropped.
pub struct SealedCard {
    pub(crate) inner: Sealed,
}

impl fmt::Debug for SealedCard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SealedCard(<redacted>)")
    }
}

impl SealedCard {
    /// Its masked form: brand and last four.
    pub fn masked(&self) -> MaskedCard {
        match &self.inner {
            Sealed::Card { number, brand, .. } => MaskedCard {
                payment_type: PaymentType::CreditCard,
                brand: *brand,
                last4: number.last_four(),
            },
            Sealed::Bank { account_number, .. } => MaskedCard {
                payment_type: PaymentType::AchDebit,
                brand: None,
                last4: account_number.last_four(),
            },
        }
    }
}

/// Card fields as a processor connector needs them. Card data: built only inside this crate,
/// for the duration of one processor call.
pub(crate) struct CardView<'a> {
    pub(crate) number: &'a str,
    pub(crate) expiry: YearMonth,
    pub(crate) security_code: Option<&'a str>,
    // Read by the network connectors only (the `connectors` feature).
    #[cfg_attr(not(feature = "connectors"), allow(dead_code))]
    pub(crate) postal_code: Option<&'a str>,
    #[cfg_attr(not(feature = "connectors"), allow(dead_code))]
    pub(crate) brand: Option<Brand>,
}

/// Bank fields as a processor connector needs them.
pub(crate) struct BankView<'a> {
    pub(crate) routing_number: &'a str,
    pub(crate) account_number: &'a str,
}

/// What a connector is given to charge or tokenize.
pub(crate) enum PaymentView<'a> {
    Card(CardView<'a>),
    Bank(BankView<'a>),
}

impl SealedCard {
    /// The fields, for a processor connector. Card data: see `docs/pci-boundary.md`.
    pub(crate) fn expose(&self) -> PaymentView<'_> {
        match &self.inner {
            Sealed::Card {
                number,
                expiry,
                security_code,
                postal_code,
                brand,
            } => {
                let mmyyyy = expiry.expose_str();
                let month = mmyyyy[..2].parse().expect("digits");
                let year = mmyyyy[2..].parse().expect("digits");
                PaymentView::Card(CardView {
                    number: number.expose_str(),
                    expiry: YearMonth::new(year, month).expect("validated at collection"),
                    security_code: security_code.as_ref().map(SecretDigits::expose_str),
                    postal_code: postal_code.as_ref().map(SecretDigits::expose_str),
                    brand: *brand,
                })
            }
            Sealed::Bank {
                routing_number,
                account_number,
            } => PaymentView::Bank(BankView {
                routing_number: routing_number.expose_str(),
                account_number: account_number.expose_str(),
            }),
        }
    }
}
