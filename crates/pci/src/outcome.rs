//! How a payment ends, as far as the PCI zone can tell.

use serde::{Deserialize, Serialize};

use crate::card::MaskedCard;

/// Why a payment failed (the `failed_reason` vocabulary of `docs/config.md`, the part the PCI zone
/// decides; the voice payment function adds `caller-hung-up`, `start-connection-failed`,
/// `invalid-start-response` and `internal-error`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FailedReason {
    /// The processor declined the card.
    PaymentDeclined,
    /// The processor failed, answered nonsense, or did not answer in time.
    ProcessorError,
    /// A field failed more often than its retry limit allows.
    CollectionRetriesExhausted,
    /// The caller pressed nothing, attempt after attempt, until the retries were spent.
    CollectionTimeout,
    /// The caller cancelled.
    CallerCancelled,
}

impl FailedReason {
    /// The stable name (`payment-declined`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            FailedReason::PaymentDeclined => "payment-declined",
            FailedReason::ProcessorError => "processor-error",
            FailedReason::CollectionRetriesExhausted => "collection-retries-exhausted",
            FailedReason::CollectionTimeout => "collection-timeout",
            FailedReason::CallerCancelled => "caller-cancelled",
        }
    }
}

/// The result of [`crate::pay`]: masked, safe to log and to send to the agent side.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum PaymentOutcome {
    /// Charged or tokenized.
    Succeeded {
        /// Brand and last four.
        card: MaskedCard,
        /// The processor's charge id, when it gives one.
        transaction_id: Option<String>,
        /// The processor's token (payment method) id, when tokenizing.
        token_id: Option<String>,
    },
    /// Not charged.
    Failed {
        /// Brand and last four.
        card: MaskedCard,
        /// `payment-declined` or `processor-error`.
        reason: FailedReason,
        /// The processor's decline code (`insufficient_funds`, ...), for declines.
        decline_code: Option<String>,
        /// The processor's message, sanitized (no digit runs, no control characters, at most
        /// 200 characters).
        message: String,
    },
}

impl PaymentOutcome {
    /// The outcome when a payment is asked for but no card was collected (a fault of the
    /// caller of the PCI zone, never of the card): `processor-error`, no brand, no last four,
    /// and nothing sent to a processor.
    pub fn not_collected() -> PaymentOutcome {
        PaymentOutcome::Failed {
            card: MaskedCard {
                payment_type: crate::card::PaymentType::CreditCard,
                brand: None,
                last4: String::new(),
            },
            reason: FailedReason::ProcessorError,
            decline_code: None,
            message: "no card was collected".to_owned(),
        }
    }
}

/// Makes a processor's message safe to pass on: digit runs of six or more (which could be card
/// data a processor echoed) become `[redacted]`, control characters become spaces, and the
/// text is cut to 200 characters.
pub(crate) fn sanitize(message: &str) -> String {
    let chars: Vec<char> = message.chars().collect();
    let mut out = String::with_capacity(message.len().min(200));
    let mut i = 0;
    while i < chars.len() {
        if !chars[i].is_ascii_digit() {
            out.push(if chars[i].is_control() { ' ' } else { chars[i] });
            i += 1;
            continue;
        }
        // A run of digits, possibly grouped by single spaces or dashes (4242 4242 ...).
        let start = i;
        let mut digits = 0;
        while i < chars.len() {
            if chars[i].is_ascii_digit() {
                digits += 1;
                i += 1;
            } else if (chars[i] == ' ' || chars[i] == '-')
                && chars.get(i + 1).is_some_and(char::is_ascii_digit)
            {
                i += 1;
            } else {
                break;
            }
        }
        if digits >= 6 {
            out.push_str("[redacted]");
        } else {
            out.extend(&chars[start..i]);
        }
    }
    out.chars().take(200).collect::<String>().trim().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn card_numbers_echoed_by_a_processor_are_redacted() {
        assert_eq!(
            sanitize("Your card 4242424242424242 was declined"),
            "Your card [redacted] was declined"
        );
        assert_eq!(sanitize("card 4242 4242 4242 4242."), "card [redacted].");
        assert_eq!(sanitize("exp 12/34 cvc 123"), "exp 12/34 cvc 123");
        assert_eq!(sanitize("line\nbreak\u{7}"), "line break");
        assert_eq!(sanitize(&"x".repeat(500)).len(), 200);
    }
}
