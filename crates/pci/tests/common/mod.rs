//! Shared by the pci tests: a collected card through the public API only.

#![allow(dead_code)]

use tonegate_media::{ClockRate, Key, MediaTime};
use tonegate_pci::{
    Collector, CollectorConfig, Currency, MinorUnits, PaymentRequest, PaymentType, SealedCard,
    YearMonth,
};

pub fn at(ms: u64) -> MediaTime {
    MediaTime::new(ms * 8, ClockRate::NARROWBAND)
}

/// Collects `number`, expiry `mmyy`, security code `cvc` and postal code 94107 the way a caller
/// would, and returns the sealed card.
pub fn card(number: &str, mmyy: &str, cvc: &str) -> SealedCard {
    let mut collector =
        Collector::new(CollectorConfig::new(YearMonth::new(2026, 11).unwrap())).unwrap();
    collector.start(at(0));
    let keys = format!("{number}#{mmyy}{cvc}#94107#");
    for (i, c) in keys.chars().enumerate() {
        collector.handle_key(at(500 + 300 * i as u64), Key::from_char(c).unwrap());
    }
    collector.take_card().expect("a valid test card")
}

/// Collects a bank account.
pub fn bank(routing: &str, account: &str) -> SealedCard {
    let mut config = CollectorConfig::new(YearMonth::new(2026, 11).unwrap());
    config.allowed_payment_types = vec![PaymentType::AchDebit];
    let mut collector = Collector::new(config).unwrap();
    collector.start(at(0));
    let keys = format!("{routing}{account}#");
    for (i, c) in keys.chars().enumerate() {
        collector.handle_key(at(500 + 300 * i as u64), Key::from_char(c).unwrap());
    }
    collector.take_card().expect("a valid test account")
}

pub fn request(session: &str, amount: u64) -> PaymentRequest {
    let mut processor_parameters = serde_json::Map::new();
    processor_parameters.insert("invoice_id".into(), "INV-10482".into());
    PaymentRequest {
        session_reference: session.to_owned(),
        amount: MinorUnits(amount),
        currency: Currency::new("usd").unwrap(),
        description: Some("Order #10482".to_owned()),
        processor_parameters,
        token_type: None,
    }
}
