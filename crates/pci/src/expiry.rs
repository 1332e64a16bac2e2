//! Card expiry dates, entered as MMYY.
//!
//! A card is valid through the last day of its expiry month, so a card expiring this month is
//! accepted. "This month" is a date the caller supplies ([`YearMonth`], from the gateway's
//! clock or a test), never read here. Dates more than [`MAX_YEARS_AHEAD`] years ahead are
//! refused as typing errors: no network issues cards for that long.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The furthest ahead an expiry is accepted.
pub const MAX_YEARS_AHEAD: u16 = 20;

/// A calendar month.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct YearMonth {
    year: u16,
    month: u8,
}

impl YearMonth {
    /// Month `month` (1-12) of `year`; `None` for a month out of range.
    pub fn new(year: u16, month: u8) -> Option<YearMonth> {
        (1..=12)
            .contains(&month)
            .then_some(YearMonth { year, month })
    }

    /// The year.
    pub fn year(self) -> u16 {
        self.year
    }

    /// The month, 1-12.
    pub fn month(self) -> u8 {
        self.month
    }
}

impl fmt::Debug for YearMonth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}", self.year, self.month)
    }
}

/// Reads MMYY digits as an expiry month and checks it against `today`. `None` when the month
/// is not 01-12, the card has expired, or the date is implausibly far ahead.
pub(crate) fn parse_expiry(mmyy: &[u8], today: YearMonth) -> Option<YearMonth> {
    if mmyy.len() != 4 || !mmyy.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let month = (mmyy[0] - b'0') * 10 + (mmyy[1] - b'0');
    let yy = u16::from(mmyy[2] - b'0') * 10 + u16::from(mmyy[3] - b'0');
    // Two-digit years are in the century that puts them closest after `today`.
    let century = today.year - today.year % 100;
    let mut year = century + yy;
    if year + 50 < today.year {
        year += 100;
    }
    let expiry = YearMonth::new(year, month)?;
    let limit = YearMonth::new(today.year + MAX_YEARS_AHEAD, today.month)?;
    (expiry >= today && expiry <= limit).then_some(expiry)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn today() -> YearMonth {
        YearMonth::new(2026, 11).unwrap()
    }

    #[test]
    fn the_current_month_is_still_valid_and_last_month_is_not() {
        assert_eq!(parse_expiry(b"1126", today()), YearMonth::new(2026, 11));
        assert_eq!(parse_expiry(b"1026", today()), None);
        assert_eq!(parse_expiry(b"1226", today()), YearMonth::new(2026, 12));
        assert_eq!(parse_expiry(b"0127", today()), YearMonth::new(2027, 1));
    }

    #[test]
    fn months_outside_01_to_12_and_far_future_dates_are_refused() {
        for bad in [&b"0027"[..], b"1327", b"9927", b"1147", b"112", b"11a7"] {
            assert_eq!(parse_expiry(bad, today()), None, "{bad:?}");
        }
        assert_eq!(parse_expiry(b"1146", today()), YearMonth::new(2046, 11));
    }

    #[test]
    fn two_digit_years_roll_into_the_next_century_near_its_end() {
        let late = YearMonth::new(2095, 6).unwrap();
        assert_eq!(parse_expiry(b"0601", late), YearMonth::new(2101, 6));
        assert_eq!(parse_expiry(b"0699", late), YearMonth::new(2099, 6));
    }
}
