//! Where card digits live: a fixed-size buffer that is zeroed when dropped.
//!
//! The buffer never grows (no reallocation leaves an old copy behind), never prints, never
//! serializes and cannot be cloned. Only code inside this crate can read it, through
//! [`SecretDigits::expose`], and every such call is a place an auditor should look
//! (`grep -n expose crates/pci/src`).

use std::fmt;

use secrecy::{ExposeSecret, ExposeSecretMut, SecretBox};
use zeroize::Zeroize;

/// The longest field: a 19-digit card number, or a 17-digit bank account number.
pub(crate) const MAX_DIGITS: usize = 19;

#[derive(Default, Zeroize)]
struct Buffer {
    digits: [u8; MAX_DIGITS],
    len: usize,
}

/// Digits of one field (ASCII `0`-`9`), at most [`MAX_DIGITS`].
pub(crate) struct SecretDigits(SecretBox<Buffer>);

impl SecretDigits {
    pub(crate) fn new() -> SecretDigits {
        SecretDigits(SecretBox::new(Box::default()))
    }

    /// Appends a digit; returns false (and keeps nothing) when the buffer is full.
    pub(crate) fn push(&mut self, digit: u8) -> bool {
        debug_assert!(digit.is_ascii_digit());
        let buffer = self.0.expose_secret_mut();
        if buffer.len == MAX_DIGITS {
            return false;
        }
        buffer.digits[buffer.len] = digit;
        buffer.len += 1;
        true
    }

    pub(crate) fn len(&self) -> usize {
        self.0.expose_secret().len
    }

    /// Forgets the digits, zeroing them.
    pub(crate) fn clear(&mut self) {
        self.0.expose_secret_mut().zeroize();
    }

    /// The digits, as ASCII. Card data: only for validation and for the processor.
    pub(crate) fn expose(&self) -> &[u8] {
        let buffer = self.0.expose_secret();
        &buffer.digits[..buffer.len]
    }

    /// The digits as a `&str` (they are ASCII digits). Card data, as [`Self::expose`].
    pub(crate) fn expose_str(&self) -> &str {
        std::str::from_utf8(self.expose()).expect("only ASCII digits are pushed")
    }

    /// The last four digits (fewer if shorter): the only part that may leave, masked.
    pub(crate) fn last_four(&self) -> String {
        let digits = self.expose();
        let from = digits.len().saturating_sub(4);
        String::from_utf8_lossy(&digits[from..]).into_owned()
    }
}

impl fmt::Debug for SecretDigits {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretDigits(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digits_are_kept_redacted_and_cleared() {
        let mut d = SecretDigits::new();
        for &b in b"4242424242424242" {
            assert!(d.push(b));
        }
        assert_eq!(d.expose_str(), "4242424242424242");
        assert_eq!(d.last_four(), "4242");
        assert_eq!(format!("{d:?}"), "SecretDigits(<redacted>)");
        d.clear();
        assert_eq!(d.len(), 0);
        assert!(d.expose().is_empty());
    }

    #[test]
    fn the_buffer_never_grows_past_its_maximum() {
        let mut d = SecretDigits::new();
        for _ in 0..MAX_DIGITS {
            assert!(d.push(b'1'));
        }
        assert!(!d.push(b'1'));
        assert_eq!(d.len(), MAX_DIGITS);
    }
}
