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

/// How many non-alphanumeric characters may separate two digits of one digit run
/// (`4242 4242`, `4242.4242`, `4242 - 4242`, `4242\t4242`).
const MAX_SEPARATORS: usize = 3;

/// A digit run this long or longer could be card data a processor echoed.
const MIN_REDACTED_DIGITS: usize = 6;

/// Makes a processor's message safe to pass on: digit runs of six or more digits, however
/// separated (up to three non-alphanumeric characters between two digits: spaces, dashes,
/// dots, underscores, slashes, tabs, newlines), which could be card data a processor echoed,
/// become `[redacted]`; control characters become spaces; the text is cut to 200 characters.
pub(crate) fn sanitize(message: &str) -> String {
    clean(
        message,
        Redact::Runs {
            min_digits: MIN_REDACTED_DIGITS,
        },
        200,
    )
}

/// Makes a processor's id (transaction, token) safe to pass on: a digit run standing alone that
/// could be a card number (12-19 digits, however separated, passing Luhn:
/// `txn_4242424242424242`, `4242-4242-4242-4242`) is redacted; other digit runs are kept, so
/// real ids survive (`ch_sandbox_5285d7985648c2a4`, `pi_3Nx9...`, a bare numeric transaction id
/// such as `40000000001`). `pay` removes the card's own number from ids first, glued
/// to letters or not.
pub(crate) fn sanitize_id(id: &str) -> String {
    clean(id, Redact::CardNumbersStandingAlone, 200)
}

/// The shortest digit run [`redact_digit_runs`] removes: a security code has three digits.
const MIN_FREE_TEXT_DIGITS: usize = 3;

/// How long a text [`redact_digit_runs`] returns may be, in characters.
const MAX_FREE_TEXT_CHARS: usize = 1000;

/// Makes text that was never meant to hold card data, but could (a panic message, which may
/// format any value), safe to print outside the zone, without knowing the card: every run of
/// three or more ASCII digits, however separated (up to three non-alphanumeric characters
/// between two digits, as for processor messages), becomes `[redacted]`, so a card number, a
/// security code, an expiry (`07/31`), a postal code and bank numbers all go, glued to letters
/// or not; one- and two-digit numbers stay (`index 3`, `len 12`). Control characters become
/// spaces and the text is cut to 1000 characters.
///
/// ```
/// assert_eq!(
///     tonegate_pci::redact_digit_runs("card 4242 4242 4242 4242 cvc 739 failed at step 2"),
///     "card [redacted] cvc [redacted] failed at step 2"
/// );
/// ```
pub fn redact_digit_runs(text: &str) -> String {
    clean(
        text,
        Redact::Runs {
            min_digits: MIN_FREE_TEXT_DIGITS,
        },
        MAX_FREE_TEXT_CHARS,
    )
}

/// Which digit runs [`clean`] redacts.
#[derive(Clone, Copy)]
enum Redact {
    /// Every run of at least `min_digits` digits.
    Runs { min_digits: usize },
    /// Only runs that do not touch a letter and could be a card number (ids).
    CardNumbersStandingAlone,
}

fn clean(text: &str, redact: Redact, max_chars: usize) -> String {
    let mut out = String::with_capacity(text.len().min(max_chars));
    let mut rest = text;
    let mut previous: Option<char> = None;
    while let Some(c) = rest.chars().next() {
        if !c.is_ascii_digit() {
            out.push(if c.is_control() { ' ' } else { c });
            rest = &rest[c.len_utf8()..];
            previous = Some(c);
            continue;
        }
        let (len, digits) = digit_run(rest);
        let run = &rest[..len];
        let next = rest[len..].chars().next();
        let touches_letter =
            previous.is_some_and(char::is_alphabetic) || next.is_some_and(char::is_alphabetic);
        let redacted = match redact {
            Redact::Runs { min_digits } => digits >= min_digits,
            // An id: only a run standing alone that could be a card number (12-19 digits
            // passing Luhn); numeric ids (Authorize.net's `transId`, order numbers) survive.
            Redact::CardNumbersStandingAlone => !touches_letter && could_be_a_card_number(run),
        };
        if redacted {
            out.push_str("[redacted]");
        } else {
            out.extend(run.chars().map(|c| if c.is_control() { ' ' } else { c }));
        }
        previous = run.chars().last();
        rest = &rest[len..];
    }
    out.chars()
        .take(max_chars)
        .collect::<String>()
        .trim()
        .to_owned()
}

/// Whether the digits of `run` could be a payment card number: 12 to 19 of them, passing Luhn.
fn could_be_a_card_number(run: &str) -> bool {
    let digits: Vec<u8> = run.bytes().filter(u8::is_ascii_digit).collect();
    (12..=19).contains(&digits.len()) && crate::luhn::is_valid(&digits)
}

/// The run of digits that starts `text`: its length in bytes (ending on its last digit) and its
/// number of digits. Digits may be separated by up to [`MAX_SEPARATORS`] non-alphanumeric
/// characters; a letter, or a longer gap, ends the run.
fn digit_run(text: &str) -> (usize, usize) {
    let (mut end, mut digits, mut gap) = (0, 0, 0);
    for (i, c) in text.char_indices() {
        if c.is_ascii_digit() {
            digits += 1;
            end = i + 1;
            gap = 0;
        } else if !c.is_alphanumeric() && gap < MAX_SEPARATORS {
            gap += 1;
        } else {
            break;
        }
    }
    (end, digits)
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

    #[test]
    fn digit_runs_are_redacted_whatever_separates_them() {
        for echoed in [
            "4242.4242.4242.4242",
            "4242_4242_4242_4242",
            "4242  4242  4242  4242",
            "4242\t4242\n4242\r\n4242",
            "4242/4242/4242/4242",
            "4242 - 4242 - 4242 - 4242",
            "4242, 4242; 4242: 4242",
            "424-242-4242",
            "424242",
        ] {
            let text = format!("card {echoed}, declined");
            assert_eq!(sanitize(&text), "card [redacted], declined", "{echoed:?}");
        }
        // Short numbers, numbers split by letters or by a wider gap, stay.
        assert_eq!(sanitize("12345 x 67"), "12345 x 67");
        assert_eq!(sanitize("exp 12/34 cvc 123"), "exp 12/34 cvc 123");
        assert_eq!(sanitize("HTTP 402 after 30 s"), "HTTP 402 after 30 s");
        assert_eq!(sanitize("1234    5678"), "1234    5678");
        assert_eq!(sanitize("ref 4242a4242"), "ref 4242a4242");
        // Messages redact runs glued to letters too.
        assert_eq!(sanitize("pan4242424242424242"), "pan[redacted]");
    }

    #[test]
    fn free_text_loses_every_run_of_three_digits_or_more() {
        assert_eq!(
            redact_digit_runs("charging 4242424242424242 cvv 739 exp 07/31 zip 94107"),
            "charging [redacted] cvv [redacted] exp [redacted] zip [redacted]"
        );
        assert_eq!(
            redact_digit_runs("acct000123456789/rt110000000"),
            "acct[redacted]/rt[redacted]"
        );
        assert_eq!(
            redact_digit_runs("assertion failed\n  left: 4242-4242\n right: 12"),
            "assertion failed   left: [redacted]  right: 12"
        );
        assert_eq!(
            redact_digit_runs("index out of bounds: the len is 12 but the index is 7"),
            "index out of bounds: the len is 12 but the index is 7"
        );
        assert_eq!(redact_digit_runs(&"7 ".repeat(2000)), "[redacted]");
        assert_eq!(redact_digit_runs(&"x".repeat(5000)).len(), 1000);
    }

    #[test]
    fn ids_keep_their_opaque_tokens_but_not_standalone_digit_runs() {
        for id in [
            "ch_sandbox_5285d7985648c2a4",
            "pi_3Nx9Qz2eZvKYlo2C1uPBd8Kx",
            "tok_1",
            "txn-2024",
        ] {
            assert_eq!(sanitize_id(id), id);
        }
        assert_eq!(sanitize_id("txn_4242424242424242"), "txn_[redacted]");
        assert_eq!(sanitize_id("4242-4242-4242-4242"), "[redacted]");
        assert_eq!(sanitize_id("tok.4242.4242.4242.4242.x"), "tok.[redacted].x");
        assert_eq!(sanitize_id("id\n1"), "id 1");
        // Numeric transaction ids that cannot be card numbers stay usable for reconciliation.
        assert_eq!(sanitize_id("40000000001"), "40000000001");
        assert_eq!(sanitize_id("123456789"), "123456789");
        assert_eq!(sanitize_id("4111111111111112"), "4111111111111112");
        assert_eq!(sanitize_id("4111111111111111"), "[redacted]");
    }
}
