//! Valid test card numbers, generated: digits with their Luhn check digit (ISO/IEC 7812-1)
//! appended, for benches and tests that need many distinct cards a collector accepts.
//!
//! The check digit is computed here only to *generate inputs* (numbers a caller types). It is
//! not the oracle of any test of `tonegate_pci`: pci's own Luhn validation is tested against
//! fixed, known numbers, and no test may compare pci's validation with this function.

/// `body` with its Luhn check digit appended. Panics if `body` holds anything but ASCII digits.
pub fn with_check_digit(body: &str) -> String {
    let sum: u32 = body
        .chars()
        .rev()
        .enumerate()
        .map(|(i, c)| {
            let d = c.to_digit(10).expect("a card number body is digits");
            // From the right, every other digit starting with the one next to the check digit
            // is doubled, and a two-digit result counts as the sum of its digits.
            if i % 2 == 0 {
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
    let check = (10 - sum % 10) % 10;
    format!("{body}{check}")
}

/// A random valid 16-digit Visa number. Its second digit is never 0, so it is never one of
/// the sandbox processor's decline or error cards (which start `4000`): it pays.
pub fn random_visa() -> String {
    let mut body = String::with_capacity(16);
    body.push('4');
    body.push(digit(rand::random_range(1..10)));
    for _ in 0..13 {
        body.push(digit(rand::random_range(0..10)));
    }
    with_check_digit(&body)
}

fn digit(d: u32) -> char {
    char::from_digit(d, 10).expect("a decimal digit")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_digits_of_known_test_cards() {
        for card in [
            "4242424242424242",
            "5555555555554444",
            "378282246310005",
            "79927398713",
        ] {
            assert_eq!(with_check_digit(&card[..card.len() - 1]), card);
        }
    }

    #[test]
    fn random_visas_are_sixteen_digits_and_never_a_sandbox_4000_card() {
        for _ in 0..100 {
            let card = random_visa();
            assert_eq!(card.len(), 16);
            assert!(card.starts_with('4') && !card.starts_with("40"), "{card}");
            assert_eq!(with_check_digit(&card[..15]), card);
        }
    }
}
