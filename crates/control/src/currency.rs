//! ISO 4217 currencies: the one table of codes and minor units, and money formatting.
//!
//! Amounts travel in minor units (`4200` USD is $42.00; `4200` JPY is ¥4,200; `4200` KWD is
//! KWD 4.200). The table lists every active ISO 4217 code with its number of minor-unit
//! digits (ISO 4217 amendment 179, 2025), and a symbol for the currencies callers hear most.

use std::fmt::Write;

/// A currency's ISO 4217 facts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CurrencyInfo {
    /// The alphabetic code.
    pub code: &'static str,
    /// Digits after the decimal point (the exponent of the minor unit).
    pub minor_digits: u8,
    /// A symbol to print before the amount, when one is common; else the code is used.
    pub symbol: Option<&'static str>,
}

const fn c(code: &'static str, minor_digits: u8, symbol: Option<&'static str>) -> CurrencyInfo {
    CurrencyInfo {
        code,
        minor_digits,
        symbol,
    }
}

/// Every active ISO 4217 currency (fund and precious-metal codes without a minor unit left out).
#[rustfmt::skip]
pub const CURRENCIES: &[CurrencyInfo] = &[
    c("AED", 2, None), c("AFN", 2, None), c("ALL", 2, None), c("AMD", 2, None),
    c("ANG", 2, None), c("AOA", 2, None), c("ARS", 2, None), c("AUD", 2, Some("A$")),
    c("AWG", 2, None), c("AZN", 2, None), c("BAM", 2, None), c("BBD", 2, None),
    c("BDT", 2, None), c("BGN", 2, None), c("BHD", 3, None), c("BIF", 0, None),
    c("BMD", 2, None), c("BND", 2, None), c("BOB", 2, None), c("BOV", 2, None),
    c("BRL", 2, Some("R$")), c("BSD", 2, None), c("BTN", 2, None), c("BWP", 2, None),
    c("BYN", 2, None), c("BZD", 2, None), c("CAD", 2, Some("CA$")), c("CDF", 2, None),
    c("CHE", 2, None), c("CHF", 2, None), c("CHW", 2, None), c("CLF", 4, None),
    c("CLP", 0, None), c("CNY", 2, Some("CN¥")), c("COP", 2, None), c("COU", 2, None),
    c("CRC", 2, None), c("CUP", 2, None), c("CVE", 2, None), c("CZK", 2, None),
    c("DJF", 0, None), c("DKK", 2, None), c("DOP", 2, None), c("DZD", 2, None),
    c("EGP", 2, None), c("ERN", 2, None), c("ETB", 2, None), c("EUR", 2, Some("€")),
    c("FJD", 2, None), c("FKP", 2, None), c("GBP", 2, Some("£")), c("GEL", 2, None),
    c("GHS", 2, None), c("GIP", 2, None), c("GMD", 2, None), c("GNF", 0, None),
    c("GTQ", 2, None), c("GYD", 2, None), c("HKD", 2, Some("HK$")), c("HNL", 2, None),
    c("HTG", 2, None), c("HUF", 2, None), c("IDR", 2, None), c("ILS", 2, Some("₪")),
    c("INR", 2, Some("₹")), c("IQD", 3, None), c("IRR", 2, None), c("ISK", 0, None),
    c("JMD", 2, None), c("JOD", 3, None), c("JPY", 0, Some("¥")), c("KES", 2, None),
    c("KGS", 2, None), c("KHR", 2, None), c("KMF", 0, None), c("KPW", 2, None),
    c("KRW", 0, Some("₩")), c("KWD", 3, None), c("KYD", 2, None), c("KZT", 2, None),
    c("LAK", 2, None), c("LBP", 2, None), c("LKR", 2, None), c("LRD", 2, None),
    c("LSL", 2, None), c("LYD", 3, None), c("MAD", 2, None), c("MDL", 2, None),
    c("MGA", 2, None), c("MKD", 2, None), c("MMK", 2, None), c("MNT", 2, None),
    c("MOP", 2, None), c("MRU", 2, None), c("MUR", 2, None), c("MVR", 2, None),
    c("MWK", 2, None), c("MXN", 2, Some("MX$")), c("MXV", 2, None), c("MYR", 2, None),
    c("MZN", 2, None), c("NAD", 2, None), c("NGN", 2, None), c("NIO", 2, None),
    c("NOK", 2, None), c("NPR", 2, None), c("NZD", 2, Some("NZ$")), c("OMR", 3, None),
    c("PAB", 2, None), c("PEN", 2, None), c("PGK", 2, None), c("PHP", 2, None),
    c("PKR", 2, None), c("PLN", 2, None), c("PYG", 0, None), c("QAR", 2, None),
    c("RON", 2, None), c("RSD", 2, None), c("RUB", 2, None), c("RWF", 0, None),
    c("SAR", 2, None), c("SBD", 2, None), c("SCR", 2, None), c("SDG", 2, None),
    c("SEK", 2, None), c("SGD", 2, None), c("SHP", 2, None), c("SLE", 2, None),
    c("SOS", 2, None), c("SRD", 2, None), c("SSP", 2, None), c("STN", 2, None),
    c("SVC", 2, None), c("SYP", 2, None), c("SZL", 2, None), c("THB", 2, None),
    c("TJS", 2, None), c("TMT", 2, None), c("TND", 3, None), c("TOP", 2, None),
    c("TRY", 2, None), c("TTD", 2, None), c("TWD", 2, Some("NT$")), c("TZS", 2, None),
    c("UAH", 2, None), c("UGX", 0, None), c("USD", 2, Some("$")), c("USN", 2, None),
    c("UYI", 0, None), c("UYU", 2, None), c("UYW", 4, None), c("UZS", 2, None),
    c("VED", 2, None), c("VES", 2, None), c("VND", 0, Some("₫")), c("VUV", 0, None),
    c("WST", 2, None), c("XAF", 0, None), c("XCD", 2, None), c("XCG", 2, None),
    c("XOF", 0, None), c("XPF", 0, None), c("YER", 2, None), c("ZAR", 2, None),
    c("ZMW", 2, None), c("ZWG", 2, None),
];

/// The ISO 4217 facts for `code` (case-insensitive), or `None` if it is not an active code.
pub fn lookup(code: &str) -> Option<&'static CurrencyInfo> {
    CURRENCIES
        .iter()
        .find(|c| c.code.eq_ignore_ascii_case(code))
}

/// Formats `minor` units of the currency `code` for a caller to hear: `$42.00`, `¥4,200`,
/// `KWD 4.200`, `-$1.50`. Unknown codes are printed with two decimals after the code.
pub fn format_money(minor: i64, code: &str) -> String {
    let (digits, prefix) = match lookup(code) {
        Some(info) => (
            u32::from(info.minor_digits),
            info.symbol
                .map_or_else(|| format!("{} ", info.code), str::to_owned),
        ),
        None => (2, format!("{} ", code.to_ascii_uppercase())),
    };
    let negative = minor < 0;
    let minor = minor.unsigned_abs();
    let scale = 10u64.pow(digits);
    let (whole, fraction) = (minor / scale, minor % scale);
    let mut grouped = String::new();
    let whole = whole.to_string();
    for (i, ch) in whole.chars().enumerate() {
        if i > 0 && (whole.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(ch);
    }
    let mut out = String::new();
    if negative {
        out.push('-');
    }
    out.push_str(&prefix);
    out.push_str(&grouped);
    if digits > 0 {
        let _ = write!(out, ".{fraction:0width$}", width = digits as usize);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_are_formatted_in_their_currency_s_minor_units() {
        assert_eq!(format_money(4200, "USD"), "$42.00");
        assert_eq!(format_money(4200, "usd"), "$42.00");
        assert_eq!(format_money(4200, "JPY"), "¥4,200");
        assert_eq!(format_money(4200, "KWD"), "KWD 4.200");
        assert_eq!(format_money(123456789, "EUR"), "€1,234,567.89");
        assert_eq!(format_money(5, "GBP"), "£0.05");
        assert_eq!(format_money(-150, "USD"), "-$1.50");
        assert_eq!(format_money(10000, "CLF"), "CLF 1.0000");
        assert_eq!(format_money(0, "USD"), "$0.00");
    }

    #[test]
    fn the_table_has_each_code_once_and_in_order() {
        let codes: Vec<&str> = CURRENCIES.iter().map(|c| c.code).collect();
        let mut sorted = codes.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(codes, sorted);
        assert!(lookup("XYZ").is_none());
        assert_eq!(lookup("bhd").unwrap().minor_digits, 3);
    }
}
