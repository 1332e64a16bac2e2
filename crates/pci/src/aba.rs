//! ABA routing transit numbers (US bank routing numbers): nine digits with a weighted check.
//!
//! The checksum is 3·(d1 + d4 + d7) + 7·(d2 + d5 + d8) + (d3 + d6 + d9) ≡ 0 (mod 10), as
//! published by the American Bankers Association (ABA Routing Number Policy, "check digit").

/// Whether `digits` are a well-formed routing number.
pub(crate) fn is_valid_routing_number(digits: &[u8]) -> bool {
    if digits.len() != 9 || !digits.iter().all(u8::is_ascii_digit) {
        return false;
    }
    let d: Vec<u32> = digits.iter().map(|&b| u32::from(b - b'0')).collect();
    let sum = 3 * (d[0] + d[3] + d[6]) + 7 * (d[1] + d[4] + d[7]) + (d[2] + d[5] + d[8]);
    sum.is_multiple_of(10) && d.iter().any(|&x| x != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn real_routing_numbers_pass_and_altered_ones_fail() {
        // Published routing numbers of large US banks.
        for n in ["011000015", "021000021", "111000025", "121000358"] {
            assert!(is_valid_routing_number(n.as_bytes()), "{n}");
        }
        for n in ["011000016", "02100002", "0210000210", "000000000"] {
            assert!(!is_valid_routing_number(n.as_bytes()), "{n}");
        }
    }
}
