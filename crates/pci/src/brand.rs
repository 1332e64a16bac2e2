//! Card brands, recognised from the issuer identification number (IIN) at the start of the
//! card number, with the lengths each brand issues.
//!
//! One table, [`IIN_RANGES`], holds every rule. Source: the networks' published IIN ranges as
//! collected in the "Payment card number" IIN table (Wikipedia, 2024 revision) and the
//! networks' developer documentation (Mastercard 2-series since 2017, Discover's
//! 622126-622925 UnionPay co-badge, Diners Club International 36 at 14-19 digits). Where
//! ranges overlap, the longest matching prefix wins (Discover 6011 over UnionPay 62, Maestro
//! 6759 over nothing, Discover 622126-622925 over UnionPay 62).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A card brand (network), named as in `valid_card_types`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Brand {
    /// Visa.
    Visa,
    /// Mastercard.
    Mastercard,
    /// American Express.
    Amex,
    /// Discover.
    Discover,
    /// Diners Club International.
    Diners,
    /// JCB.
    Jcb,
    /// China UnionPay.
    Unionpay,
    /// Maestro.
    Maestro,
}

impl Brand {
    /// Every brand, in table order.
    pub const ALL: [Brand; 8] = [
        Brand::Visa,
        Brand::Mastercard,
        Brand::Amex,
        Brand::Discover,
        Brand::Diners,
        Brand::Jcb,
        Brand::Unionpay,
        Brand::Maestro,
    ];

    /// The name used in configuration and events (`visa`, `mastercard`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Brand::Visa => "visa",
            Brand::Mastercard => "mastercard",
            Brand::Amex => "amex",
            Brand::Discover => "discover",
            Brand::Diners => "diners",
            Brand::Jcb => "jcb",
            Brand::Unionpay => "unionpay",
            Brand::Maestro => "maestro",
        }
    }

    /// The length of this brand's security code (4 for American Express, else 3).
    pub fn security_code_len(self) -> usize {
        if self == Brand::Amex {
            4
        } else {
            3
        }
    }
}

impl fmt::Display for Brand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A brand name that is not one of [`Brand::ALL`].
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("unknown card brand `{0}`; known brands: visa, mastercard, amex, discover, diners, jcb, unionpay, maestro")]
pub struct UnknownBrand(pub String);

impl FromStr for Brand {
    type Err = UnknownBrand;

    fn from_str(s: &str) -> Result<Brand, UnknownBrand> {
        Brand::ALL
            .into_iter()
            .find(|b| b.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| UnknownBrand(s.to_owned()))
    }
}

/// One IIN rule: card numbers whose first `digits` digits are in `low..=high` belong to
/// `brand` and have one of `lengths`.
pub(crate) struct IinRange {
    pub(crate) low: u32,
    pub(crate) high: u32,
    pub(crate) digits: u32,
    pub(crate) brand: Brand,
    pub(crate) lengths: &'static [usize],
}

const fn range(
    low: u32,
    high: u32,
    digits: u32,
    brand: Brand,
    lengths: &'static [usize],
) -> IinRange {
    IinRange {
        low,
        high,
        digits,
        brand,
        lengths,
    }
}

const SIXTEEN_TO_NINETEEN: &[usize] = &[16, 17, 18, 19];

/// The IIN table (see the module docs for its source).
pub(crate) const IIN_RANGES: &[IinRange] = &[
    range(4, 4, 1, Brand::Visa, &[13, 16, 19]),
    range(51, 55, 2, Brand::Mastercard, &[16]),
    range(2221, 2720, 4, Brand::Mastercard, &[16]),
    range(34, 34, 2, Brand::Amex, &[15]),
    range(37, 37, 2, Brand::Amex, &[15]),
    range(6011, 6011, 4, Brand::Discover, SIXTEEN_TO_NINETEEN),
    range(644, 649, 3, Brand::Discover, SIXTEEN_TO_NINETEEN),
    range(65, 65, 2, Brand::Discover, SIXTEEN_TO_NINETEEN),
    range(622126, 622925, 6, Brand::Discover, SIXTEEN_TO_NINETEEN),
    range(300, 305, 3, Brand::Diners, SIXTEEN_TO_NINETEEN),
    range(36, 36, 2, Brand::Diners, &[14, 15, 16, 17, 18, 19]),
    range(38, 39, 2, Brand::Diners, SIXTEEN_TO_NINETEEN),
    range(3528, 3589, 4, Brand::Jcb, SIXTEEN_TO_NINETEEN),
    range(62, 62, 2, Brand::Unionpay, SIXTEEN_TO_NINETEEN),
    range(
        5018,
        5018,
        4,
        Brand::Maestro,
        &[12, 13, 14, 15, 16, 17, 18, 19],
    ),
    range(
        5020,
        5020,
        4,
        Brand::Maestro,
        &[12, 13, 14, 15, 16, 17, 18, 19],
    ),
    range(
        5038,
        5038,
        4,
        Brand::Maestro,
        &[12, 13, 14, 15, 16, 17, 18, 19],
    ),
    range(
        5893,
        5893,
        4,
        Brand::Maestro,
        &[12, 13, 14, 15, 16, 17, 18, 19],
    ),
    range(
        6304,
        6304,
        4,
        Brand::Maestro,
        &[12, 13, 14, 15, 16, 17, 18, 19],
    ),
    range(
        6759,
        6759,
        4,
        Brand::Maestro,
        &[12, 13, 14, 15, 16, 17, 18, 19],
    ),
    range(
        6761,
        6763,
        4,
        Brand::Maestro,
        &[12, 13, 14, 15, 16, 17, 18, 19],
    ),
];

/// The IIN rule for a card number's leading digits, or `None` if no brand matches (yet: a
/// prefix may be too short to tell).
pub(crate) fn lookup(digits: &[u8]) -> Option<&'static IinRange> {
    IIN_RANGES
        .iter()
        .filter(|r| {
            let n = r.digits as usize;
            digits.len() >= n && {
                let prefix = digits[..n]
                    .iter()
                    .fold(0u32, |acc, &b| acc * 10 + u32::from(b - b'0'));
                (r.low..=r.high).contains(&prefix)
            }
        })
        .max_by_key(|r| r.digits)
}

/// Whether more digits could still change [`lookup`]'s answer for this prefix: some longer
/// rule than the one matched (if any) could still match.
pub(crate) fn is_ambiguous(digits: &[u8]) -> bool {
    let matched = lookup(digits).map_or(0, |r| r.digits);
    IIN_RANGES.iter().any(|r| {
        r.digits > matched && digits.len() < r.digits as usize && {
            // Could a number starting with `digits` fall in this longer range?
            let n = digits.len() as u32;
            let scale = 10u32.pow(r.digits - n);
            let prefix = digits
                .iter()
                .fold(0u32, |acc, &b| acc * 10 + u32::from(b - b'0'));
            let lo = prefix * scale;
            let hi = lo + scale - 1;
            lo <= r.high && hi >= r.low
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn brand(n: &str) -> Option<Brand> {
        lookup(n.as_bytes()).map(|r| r.brand)
    }

    #[test]
    fn each_brand_is_recognised_with_its_lengths() {
        let cases = [
            ("4242424242424242", Brand::Visa, 16),
            ("5555555555554444", Brand::Mastercard, 16),
            ("2223003122003222", Brand::Mastercard, 16),
            ("2720990000000007", Brand::Mastercard, 16),
            ("378282246310005", Brand::Amex, 15),
            ("341111111111111", Brand::Amex, 15),
            ("6011111111111117", Brand::Discover, 16),
            ("6445644564456445", Brand::Discover, 16),
            ("6221260000000000", Brand::Discover, 16),
            ("36227206271667", Brand::Diners, 14),
            ("3056930009020004", Brand::Diners, 16),
            ("3566002020360505", Brand::Jcb, 16),
            ("6200000000000005", Brand::Unionpay, 16),
            ("6759649826438453", Brand::Maestro, 16),
            ("5018000000000009", Brand::Maestro, 16),
        ];
        for (number, expected, len) in cases {
            let rule = lookup(number.as_bytes()).unwrap_or_else(|| panic!("{number}"));
            assert_eq!(rule.brand, expected, "{number}");
            assert!(rule.lengths.contains(&len), "{number}");
        }
    }

    #[test]
    fn boundaries_of_the_mastercard_2_series_and_overlaps_are_exact() {
        assert_eq!(brand("2220999999999999"), None);
        assert_eq!(brand("2221000000000000"), Some(Brand::Mastercard));
        assert_eq!(brand("2721000000000000"), None);
        assert_eq!(brand("5600000000000000"), None);
        assert_eq!(brand("6221250000000000"), Some(Brand::Unionpay));
        assert_eq!(brand("6229250000000000"), Some(Brand::Discover));
        assert_eq!(brand("6229260000000000"), Some(Brand::Unionpay));
        assert_eq!(brand("3000000000000004"), Some(Brand::Diners));
        assert_eq!(brand("3060000000000000"), None);
    }

    #[test]
    fn a_short_prefix_is_ambiguous_until_a_longer_rule_is_settled() {
        assert!(is_ambiguous(b"6"));
        assert!(is_ambiguous(b"62"), "could still be Discover 622126-622925");
        assert!(is_ambiguous(b"6221"));
        assert!(!is_ambiguous(b"622127"));
        assert!(!is_ambiguous(b"4"));
        assert!(is_ambiguous(b"5"), "51-55 or Maestro 5018");
        assert!(!is_ambiguous(b"55"));
    }

    #[test]
    fn brand_names_parse_as_in_configuration() {
        assert_eq!("VISA".parse::<Brand>(), Ok(Brand::Visa));
        assert_eq!("amex".parse::<Brand>(), Ok(Brand::Amex));
        let err = "dinersclub".parse::<Brand>().unwrap_err();
        assert!(err.to_string().contains("known brands"));
        assert_eq!(
            serde_json::to_string(&Brand::Unionpay).unwrap(),
            "\"unionpay\""
        );
    }
}
