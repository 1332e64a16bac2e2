//! The Luhn (mod 10) check digit of ISO/IEC 7812-1, which every payment card number carries.

/// Whether `digits` (ASCII `0`-`9`) pass the Luhn check.
pub(crate) fn is_valid(digits: &[u8]) -> bool {
    if digits.is_empty() {
        return false;
    }
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &b)| {
            let d = u32::from(b - b'0');
            if i % 2 == 1 {
                let doubled = d * 2;
                if doubled > 9 {
                    doubled - 9
                } else {
                    doubled
                }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_numbers_pass_and_a_changed_digit_fails() {
        for n in [
            "4242424242424242",
            "378282246310005",
            "6011111111111117",
            "79927398713",
        ] {
            assert!(is_valid(n.as_bytes()), "{n}");
        }
        for n in ["4242424242424241", "378282246310006", "79927398710", ""] {
            assert!(!is_valid(n.as_bytes()), "{n}");
        }
    }

    #[test]
    fn every_single_digit_error_is_caught() {
        let good = b"4111111111111111";
        for i in 0..good.len() {
            for d in b'0'..=b'9' {
                if d == good[i] {
                    continue;
                }
                let mut bad = *good;
                bad[i] = d;
                assert!(!is_valid(&bad), "{}", String::from_utf8_lossy(&bad));
            }
        }
    }
}
