//! The collector seen from outside: every collection rule of issue #3, driven on media time.

use tonegate_media::{ClockRate, Key, MediaTime, Millis};
use tonegate_pci::{
    Brand, CollectEvent, CollectionError, Collector, CollectorConfig, CollectorState, ConfigError,
    FailedReason, Field, MaskedCard, PaymentType, StarKey, YearMonth,
};

fn at(ms: u64) -> MediaTime {
    MediaTime::new(ms * 8, ClockRate::NARROWBAND)
}

fn today() -> YearMonth {
    YearMonth::new(2026, 11).unwrap()
}

fn config() -> CollectorConfig {
    CollectorConfig::new(today())
}

/// Drives a collector: keys typed 300 ms apart from `*clock`, timeouts handled as they fall.
struct Caller {
    collector: Collector,
    clock: u64,
    events: Vec<CollectEvent>,
}

impl Caller {
    fn new(config: CollectorConfig) -> Caller {
        let mut collector = Collector::new(config).unwrap();
        collector.start(at(0));
        let mut caller = Caller {
            collector,
            clock: 0,
            events: Vec::new(),
        };
        caller.drain();
        caller
    }

    fn drain(&mut self) {
        while let Some(e) = self.collector.poll_event() {
            self.events.push(e);
        }
    }

    /// Lets media time pass, firing any timeout due on the way.
    fn wait(&mut self, ms: u64) {
        let until = self.clock + ms;
        while let Some(due) = self.collector.poll_timeout() {
            if due > at(until) {
                break;
            }
            self.collector.handle_timeout(due);
            self.clock = due.ticks() / 8;
            self.drain();
        }
        self.clock = until;
    }

    fn keys(&mut self, keys: &str) {
        for c in keys.chars() {
            self.wait(300);
            self.collector
                .handle_key(at(self.clock), Key::from_char(c).unwrap());
            self.drain();
        }
    }

    fn take_events(&mut self) -> Vec<CollectEvent> {
        std::mem::take(&mut self.events)
    }
}

fn rejected(events: &[CollectEvent]) -> Vec<(Field, CollectionError, u32, u32)> {
    events
        .iter()
        .filter_map(|e| match e {
            CollectEvent::FieldRejected {
                field,
                error,
                attempt,
                retries_left,
            } => Some((*field, *error, *attempt, *retries_left)),
            _ => None,
        })
        .collect()
}

fn ready(events: &[CollectEvent]) -> Option<MaskedCard> {
    events.iter().find_map(|e| match e {
        CollectEvent::CardReady { card } => Some(card.clone()),
        _ => None,
    })
}

fn ended(events: &[CollectEvent]) -> Option<FailedReason> {
    events.iter().find_map(|e| match e {
        CollectEvent::Ended { reason } => Some(*reason),
        _ => None,
    })
}

#[test]
fn a_whole_card_is_collected_field_by_field_and_only_masked_events_come_out() {
    let mut caller = Caller::new(config());
    caller.keys("4242424242424242#");
    caller.keys("1230");
    caller.keys("123");
    caller.keys("94107#");
    let events = caller.take_events();
    let started: Vec<Field> = events
        .iter()
        .filter_map(|e| match e {
            CollectEvent::FieldStarted { field, attempt: 1 } => Some(*field),
            _ => None,
        })
        .collect();
    assert_eq!(
        started,
        [
            Field::CardNumber,
            Field::ExpirationDate,
            Field::SecurityCode,
            Field::PostalCode
        ]
    );
    assert!(events.contains(&CollectEvent::FieldCompleted {
        field: Field::CardNumber,
        brand: Some(Brand::Visa)
    }));
    let counts: Vec<usize> = events
        .iter()
        .filter_map(|e| match e {
            CollectEvent::KeyAccepted {
                field: Field::CardNumber,
                digits,
            } => Some(*digits),
            _ => None,
        })
        .collect();
    assert_eq!(counts, (1..=16).collect::<Vec<_>>());
    let card = ready(&events).expect("card ready");
    assert_eq!(card.to_string(), "visa ending 4242");
    assert_eq!(card.payment_type, PaymentType::CreditCard);
    assert_eq!(caller.collector.state(), CollectorState::Ready);
    let sealed = caller.collector.take_card().expect("card");
    assert_eq!(sealed.masked(), card);
    assert_eq!(format!("{sealed:?}"), "SealedCard(<redacted>)");
    assert_eq!(caller.collector.state(), CollectorState::Ended);
    assert!(caller.collector.take_card().is_none(), "taken once");
    // Every event, as JSON, holds no more than the last four of the card.
    let json = serde_json::to_string(&events).unwrap();
    for secret in ["424242424242", "1230", "\"123\"", "94107"] {
        assert!(!json.contains(secret), "{secret} in {json}");
    }
}

#[test]
fn a_field_ends_at_its_brand_s_maximum_length_without_a_terminator() {
    let mut c = config();
    c.security_code_required = true;
    c.postal_code_required = false;
    let mut caller = Caller::new(c);
    caller.keys("378282246310005"); // amex: 15 digits, no #
    caller.keys("1230"); // expiry: 4 digits, no #
    caller.keys("1234"); // amex security code: 4 digits
    let events = caller.take_events();
    assert!(rejected(&events).is_empty(), "{events:?}");
    assert_eq!(ready(&events).unwrap().to_string(), "amex ending 0005");
}

#[test]
fn the_inter_digit_timeout_completes_a_valid_length_and_rejects_a_short_one() {
    let mut c = config();
    c.security_code_required = false;
    c.postal_code_required = false;
    c.inter_digit_timeout = Millis(3000.0);
    let mut caller = Caller::new(c);
    caller.keys("4242424242424242"); // visa may be 19 long: no automatic end at 16
    assert_eq!(
        caller.collector.state(),
        CollectorState::Collecting(Field::CardNumber)
    );
    caller.wait(3000);
    assert_eq!(
        caller.collector.state(),
        CollectorState::Collecting(Field::ExpirationDate),
        "16 digits is a complete visa length"
    );
    caller.collector.different_card(at(caller.clock));
    caller.take_events();
    caller.keys("424242424242"); // 12 digits: not a visa length
    caller.wait(3000);
    assert_eq!(
        rejected(&caller.take_events()),
        [(Field::CardNumber, CollectionError::InvalidCardNumber, 1, 3)]
    );
}

#[test]
fn star_clears_the_field_by_default() {
    let mut c = config();
    c.security_code_required = false;
    c.postal_code_required = false;
    let mut caller = Caller::new(c);
    caller.keys("4111*4242424242424242#1230");
    let events = caller.take_events();
    assert!(events.contains(&CollectEvent::FieldCleared {
        field: Field::CardNumber
    }));
    assert!(rejected(&events).is_empty());
    assert_eq!(ready(&events).unwrap().last4, "4242");
}

#[test]
fn star_cancels_the_session_when_configured_like_twilio_pay() {
    let mut c = config();
    c.star_key = StarKey::CancelSession;
    let mut caller = Caller::new(c);
    caller.keys("4242*");
    assert_eq!(
        ended(&caller.take_events()),
        Some(FailedReason::CallerCancelled)
    );
    assert_eq!(caller.collector.state(), CollectorState::Ended);
    assert!(caller.collector.take_card().is_none());
    caller.keys("4242");
    assert!(
        caller.take_events().is_empty(),
        "keys after the end do nothing"
    );
}

#[test]
fn every_failed_attempt_reports_its_number_and_the_retries_left_until_they_run_out() {
    let mut c = config();
    c.retry_limit = 2;
    let mut caller = Caller::new(c);
    caller.keys("4242424242424241#"); // Luhn fails
    caller.keys("4242#"); // too short
    caller.keys("1234567890123456#"); // Luhn fails again: third attempt, no retries left
    let events = caller.take_events();
    assert_eq!(
        rejected(&events),
        [
            (Field::CardNumber, CollectionError::InvalidCardNumber, 1, 2),
            (Field::CardNumber, CollectionError::InvalidCardNumber, 2, 1),
            (Field::CardNumber, CollectionError::InvalidCardNumber, 3, 0),
        ]
    );
    assert!(events.contains(&CollectEvent::FieldStarted {
        field: Field::CardNumber,
        attempt: 3
    }));
    assert_eq!(
        ended(&events),
        Some(FailedReason::CollectionRetriesExhausted)
    );
}

#[test]
fn silence_is_a_timeout_error_and_ends_as_collection_timeout() {
    let mut c = config();
    c.retry_limit = 1;
    c.first_key_timeout = Millis(8000.0);
    let mut caller = Caller::new(c);
    caller.wait(8000);
    assert_eq!(
        rejected(&caller.take_events()),
        [(Field::CardNumber, CollectionError::Timeout, 1, 1)]
    );
    caller.wait(7999);
    assert!(
        caller.take_events().is_empty(),
        "the new attempt has its own 8 s"
    );
    caller.wait(1);
    let events = caller.take_events();
    assert_eq!(
        rejected(&events),
        [(Field::CardNumber, CollectionError::Timeout, 2, 0)]
    );
    assert_eq!(ended(&events), Some(FailedReason::CollectionTimeout));
}

#[test]
fn a_later_field_can_be_re_entered_after_an_error_and_attempts_count_per_field() {
    let mut caller = Caller::new(config());
    caller.keys("4242424242424242#");
    caller.keys("1325"); // month 13
    caller.keys("1025"); // expired
    caller.keys("1230");
    caller.keys("12#"); // too short
    caller.keys("123");
    caller.keys("941#"); // below min_postal_code_length 5
    caller.keys("94107#");
    let events = caller.take_events();
    assert_eq!(
        rejected(&events),
        [
            (Field::ExpirationDate, CollectionError::InvalidDate, 1, 3),
            (Field::ExpirationDate, CollectionError::InvalidDate, 2, 2),
            (
                Field::SecurityCode,
                CollectionError::InvalidSecurityCode,
                1,
                3
            ),
            (Field::PostalCode, CollectionError::InvalidPostalCode, 1, 3),
        ]
    );
    assert!(ready(&events).is_some());
}

#[test]
fn expiry_is_valid_through_the_end_of_its_month() {
    let mut c = config();
    c.security_code_required = false;
    c.postal_code_required = false;
    let mut caller = Caller::new(c.clone());
    caller.keys("4242424242424242#1126"); // this month
    assert!(ready(&caller.take_events()).is_some());
    let mut caller = Caller::new(c);
    caller.keys("4242424242424242#1026"); // last month
    assert_eq!(
        rejected(&caller.take_events()),
        [(Field::ExpirationDate, CollectionError::InvalidDate, 1, 3)]
    );
}

#[test]
fn brands_outside_valid_card_types_are_invalid_card_type() {
    let mut c = config();
    c.valid_card_types = vec![Brand::Visa, Brand::Amex];
    let mut caller = Caller::new(c.clone());
    caller.keys("5555555555554444#");
    assert_eq!(
        rejected(&caller.take_events()),
        [(Field::CardNumber, CollectionError::InvalidCardType, 1, 3)]
    );
    // A Luhn-valid number in no known IIN range is refused when brands are restricted...
    let mut caller = Caller::new(c);
    caller.keys("9999999999999995#");
    assert_eq!(
        rejected(&caller.take_events()),
        [(Field::CardNumber, CollectionError::InvalidCardType, 1, 3)]
    );
    // ... and accepted, brand unknown, when every brand is.
    let mut any = config();
    any.security_code_required = false;
    any.postal_code_required = false;
    let mut caller = Caller::new(any);
    caller.keys("9999999999999995#1230");
    let card = ready(&caller.take_events()).unwrap();
    assert_eq!((card.brand, card.last4.as_str()), (None, "9995"));
}

#[test]
fn a_number_of_the_wrong_length_for_its_brand_is_invalid() {
    let mut caller = Caller::new(config());
    caller.keys("42424242424242#"); // 14-digit visa: Luhn aside, visa is 13, 16 or 19
    caller.keys("37828224631#"); // amex prefix, 11 digits
    let errors: Vec<CollectionError> = rejected(&caller.take_events())
        .into_iter()
        .map(|r| r.1)
        .collect();
    assert_eq!(
        errors,
        [
            CollectionError::InvalidCardNumber,
            CollectionError::InvalidCardNumber
        ]
    );
}

#[test]
fn the_security_code_is_four_digits_for_amex_and_three_otherwise() {
    let mut c = config();
    c.postal_code_required = false;
    let mut caller = Caller::new(c.clone());
    caller.keys("378282246310005");
    caller.keys("1230");
    caller.keys("123#");
    assert_eq!(
        rejected(&caller.take_events()),
        [(
            Field::SecurityCode,
            CollectionError::InvalidSecurityCode,
            1,
            3
        )]
    );
    let mut caller = Caller::new(c);
    caller.keys("4242424242424242#1230");
    caller.keys("1234"); // the field ends at 3 digits; the 4th key is too late for it
    let events = caller.take_events();
    assert!(ready(&events).is_some());
    assert!(rejected(&events).is_empty());
}

#[test]
fn a_different_card_restarts_from_the_card_number_even_when_ready() {
    let mut c = config();
    c.security_code_required = false;
    c.postal_code_required = false;
    let mut caller = Caller::new(c);
    caller.keys("4242424242424242#1230");
    assert!(ready(&caller.take_events()).is_some());
    caller.collector.different_card(at(caller.clock));
    assert_eq!(
        caller.take_events_after_drain(),
        [CollectEvent::FieldStarted {
            field: Field::CardNumber,
            attempt: 1
        }]
    );
    assert!(
        caller.collector.take_card().is_none(),
        "the first card is gone"
    );
    caller.keys("5555555555554444#0128");
    assert_eq!(
        ready(&caller.take_events()).unwrap().to_string(),
        "mastercard ending 4444"
    );
}

impl Caller {
    fn take_events_after_drain(&mut self) -> Vec<CollectEvent> {
        self.drain();
        self.take_events()
    }
}

#[test]
fn a_pause_stops_the_timers_and_ignores_keys_then_resumes_the_same_field() {
    let mut c = config();
    c.inter_digit_timeout = Millis(5000.0);
    let mut caller = Caller::new(c);
    caller.keys("4242");
    caller.take_events();
    caller.collector.pause(at(caller.clock));
    assert!(caller.collector.is_paused());
    assert_eq!(caller.collector.poll_timeout(), None);
    caller.wait(60_000);
    caller.keys("99");
    let during = caller.take_events();
    assert!(
        !during.iter().any(|e| matches!(
            e,
            CollectEvent::KeyAccepted { .. } | CollectEvent::FieldRejected { .. }
        )),
        "{during:?}"
    );
    caller.collector.resume(at(caller.clock));
    caller.keys("424242424242#");
    let after = caller.take_events();
    assert!(rejected(&after).is_empty(), "{after:?}");
    assert!(after.contains(&CollectEvent::FieldCompleted {
        field: Field::CardNumber,
        brand: Some(Brand::Visa)
    }));
}

#[test]
fn bank_debits_collect_routing_and_account_numbers() {
    let mut c = config();
    c.allowed_payment_types = vec![PaymentType::AchDebit];
    let mut caller = Caller::new(c);
    caller.keys("021000022#"); // bad ABA check digit
    caller.keys("021000021"); // 9 digits end the field
    caller.keys("12#"); // too short
    caller.keys("000123456789#");
    let events = caller.take_events();
    assert_eq!(
        rejected(&events),
        [
            (
                Field::BankRoutingNumber,
                CollectionError::InvalidBankRoutingNumber,
                1,
                3
            ),
            (
                Field::BankAccountNumber,
                CollectionError::InvalidBankAccountNumber,
                1,
                3
            ),
        ]
    );
    let card = ready(&events).unwrap();
    assert_eq!(card.payment_type, PaymentType::AchDebit);
    assert_eq!(card.to_string(), "bank account ending 6789");
    let json = serde_json::to_string(&events).unwrap();
    assert!(!json.contains("021000021") && !json.contains("000123456789"));
}

#[test]
fn the_payment_type_can_switch_only_to_an_allowed_one() {
    let mut caller = Caller::new(config());
    let err = caller
        .collector
        .switch_payment_type(at(0), PaymentType::AchDebit)
        .unwrap_err();
    assert_eq!(err, ConfigError::PaymentTypeNotAllowed("ach-debit"));
    let mut c = config();
    c.allowed_payment_types = vec![PaymentType::CreditCard, PaymentType::AchDebit];
    let mut caller = Caller::new(c);
    caller.keys("4242");
    caller
        .collector
        .switch_payment_type(at(caller.clock), PaymentType::AchDebit)
        .unwrap();
    assert_eq!(
        caller.collector.state(),
        CollectorState::Collecting(Field::BankRoutingNumber)
    );
}

#[test]
fn cancel_ends_collection_and_forgets_the_card() {
    let mut c = config();
    c.security_code_required = false;
    c.postal_code_required = false;
    let mut caller = Caller::new(c);
    caller.keys("4242424242424242#1230");
    caller.collector.cancel();
    caller.drain();
    assert_eq!(
        ended(&caller.take_events()),
        Some(FailedReason::CallerCancelled)
    );
    assert!(caller.collector.take_card().is_none());
}

#[test]
fn letters_are_ignored_and_configs_out_of_range_are_refused() {
    let mut caller = Caller::new(config());
    caller.keys("42A42B424242424242#");
    let events = caller.take_events();
    assert!(rejected(&events).is_empty());
    assert!(events.contains(&CollectEvent::FieldCompleted {
        field: Field::CardNumber,
        brand: Some(Brand::Visa)
    }));
    let mut c = config();
    c.min_postal_code_length = 0;
    let err = Collector::new(c).unwrap_err();
    assert_eq!(err, ConfigError::PostalCodeLength(0));
    assert!(err.to_string().contains("1 to 10"));
}

#[test]
fn a_habitual_hash_after_a_fixed_length_field_is_not_an_empty_next_field() {
    let mut caller = Caller::new(config());
    caller.keys("378282246310005#"); // amex ends at 15 by itself; the # is a habit
    caller.keys("1230#");
    caller.keys("1234#");
    caller.keys("94107#");
    let events = caller.take_events();
    assert!(rejected(&events).is_empty(), "{:?}", rejected(&events));
    assert!(ready(&events).is_some());
    // A # long after the field ended is a real (empty) entry of the next field.
    let mut c = config();
    c.inter_digit_timeout = Millis(3000.0);
    let mut caller = Caller::new(c);
    caller.keys("378282246310005");
    caller.wait(3500);
    caller.keys("#");
    assert_eq!(
        rejected(&caller.take_events()),
        [(Field::ExpirationDate, CollectionError::InvalidDate, 1, 3)]
    );
}
