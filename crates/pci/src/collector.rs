//! The card collector: one payment session's field-by-field keypad loop, sans-IO.
//!
//! Fields come in a fixed order: `card_number`, `expiration_date` (MMYY), `security_code`
//! when required, `postal_code` when required; for a bank debit `bank_routing_number` then
//! `bank_account_number`. Each field is one gather ([`tonegate_media::gather`]): it ends on
//! `#`, on its maximum length, or on the inter-digit timeout; the entry is then validated.
//! A failed attempt is reported with its error type, attempt number and retries left, and the
//! field starts again; when the retries are spent, collection ends.
//!
//! `*` clears the field being entered ([`StarKey::ClearField`], the default) or cancels the
//! session ([`StarKey::CancelSession`], Twilio `<Pay>`'s behaviour). `A`-`D` are ignored.
//! While paused (the caller asked a question) the timers stop and keys are ignored, not held:
//! a key pressed while the agent talks is a key the caller did not mean for the field.

use std::collections::VecDeque;
use std::fmt;

use serde::{Deserialize, Serialize};
use tonegate_media::gather::{GatherConfig, GatherEnd, GatherStep, Gatherer};
use tonegate_media::{Key, MediaDuration, MediaTime, Millis};

use crate::aba;
use crate::brand::{self, Brand};
use crate::card::{MaskedCard, PaymentType, Sealed, SealedCard};
use crate::expiry::{parse_expiry, YearMonth};
use crate::luhn;
use crate::outcome::FailedReason;
use crate::secret::SecretDigits;

/// A field the caller types.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Field {
    /// The card number (PAN), 12-19 digits.
    CardNumber,
    /// The expiry, MMYY.
    ExpirationDate,
    /// The security code (CVV/CVC/CID), 3 digits, 4 for American Express.
    SecurityCode,
    /// The billing postal code, digits only.
    PostalCode,
    /// A US bank routing number, 9 digits.
    BankRoutingNumber,
    /// A bank account number, 4-17 digits.
    BankAccountNumber,
}

impl Field {
    /// The stable name (`card_number`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Field::CardNumber => "card_number",
            Field::ExpirationDate => "expiration_date",
            Field::SecurityCode => "security_code",
            Field::PostalCode => "postal_code",
            Field::BankRoutingNumber => "bank_routing_number",
            Field::BankAccountNumber => "bank_account_number",
        }
    }
}

/// Why an attempt at a field failed (read by the `collection_error` message).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CollectionError {
    /// No key within the first-key timeout.
    Timeout,
    /// Wrong length for the brand, or the Luhn check failed.
    InvalidCardNumber,
    /// A brand outside `valid_card_types`, or an unknown brand when brands are restricted.
    InvalidCardType,
    /// Month not 01-12, expired, or implausibly far ahead.
    InvalidDate,
    /// Not the brand's security-code length.
    InvalidSecurityCode,
    /// Fewer digits than `min_postal_code_length`, or more than 10.
    InvalidPostalCode,
    /// Not 9 digits with a valid ABA check digit.
    InvalidBankRoutingNumber,
    /// Not 4-17 digits.
    InvalidBankAccountNumber,
}

impl CollectionError {
    /// The stable name (`timeout`, `invalid-card-number`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            CollectionError::Timeout => "timeout",
            CollectionError::InvalidCardNumber => "invalid-card-number",
            CollectionError::InvalidCardType => "invalid-card-type",
            CollectionError::InvalidDate => "invalid-date",
            CollectionError::InvalidSecurityCode => "invalid-security-code",
            CollectionError::InvalidPostalCode => "invalid-postal-code",
            CollectionError::InvalidBankRoutingNumber => "invalid-bank-routing-number",
            CollectionError::InvalidBankAccountNumber => "invalid-bank-account-number",
        }
    }
}

/// What `*` does.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StarKey {
    /// Clears the field being entered so the caller can type it again (default).
    #[default]
    ClearField,
    /// Ends the session as a caller cancel (Twilio `<Pay>`).
    CancelSession,
}

/// A collector's settings: from the start connection's response and the function's limits.
#[derive(Clone, Debug, PartialEq)]
pub struct CollectorConfig {
    /// `allowed_payment_types`; collection starts with a card when allowed (empty: cards).
    pub allowed_payment_types: Vec<PaymentType>,
    /// `is_security_code_required`.
    pub security_code_required: bool,
    /// `is_postal_code_required`.
    pub postal_code_required: bool,
    /// `min_postal_code_length` (1-10).
    pub min_postal_code_length: usize,
    /// `valid_card_types`; empty accepts every brand, unknown ones included.
    pub valid_card_types: Vec<Brand>,
    /// Retries per field after the first attempt.
    pub retry_limit: u32,
    /// How long the caller has to press the first key of a field.
    pub first_key_timeout: Millis,
    /// How long the caller may pause between keys.
    pub inter_digit_timeout: Millis,
    /// What `*` does.
    pub star_key: StarKey,
    /// This month, for expiry checks (the caller's clock, never read here).
    pub today: YearMonth,
}

impl CollectorConfig {
    /// A card collection with the usual settings: security and postal codes required, postal
    /// codes of at least 5 digits, every brand, 3 retries, 10 s to the first key, 5 s between
    /// keys, `*` clears.
    pub fn new(today: YearMonth) -> CollectorConfig {
        CollectorConfig {
            allowed_payment_types: vec![PaymentType::CreditCard],
            security_code_required: true,
            postal_code_required: true,
            min_postal_code_length: 5,
            valid_card_types: Vec::new(),
            retry_limit: 3,
            first_key_timeout: Millis(10_000.0),
            inter_digit_timeout: Millis(5_000.0),
            star_key: StarKey::ClearField,
            today,
        }
    }
}

/// A configuration the collector cannot run with.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    /// `min_postal_code_length` outside 1-10.
    #[error("min_postal_code_length must be 1 to 10, got {0}")]
    PostalCodeLength(usize),
    /// A payment type that `allowed_payment_types` does not allow.
    #[error("payment type {0} is not in allowed_payment_types")]
    PaymentTypeNotAllowed(&'static str),
}

/// What the collector reports: masked, safe to log, show to the agent side and serialize.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum CollectEvent {
    /// A field is being asked for (prompt the caller).
    FieldStarted {
        /// The field.
        field: Field,
        /// 1 for the first attempt.
        attempt: u32,
    },
    /// A digit was accepted: how many the field now holds (never which).
    KeyAccepted {
        /// The field.
        field: Field,
        /// Digits entered so far.
        digits: usize,
    },
    /// The caller pressed `*` and the field is empty again.
    FieldCleared {
        /// The field.
        field: Field,
    },
    /// A field validated.
    FieldCompleted {
        /// The field.
        field: Field,
        /// For the card number: its brand, when known.
        brand: Option<Brand>,
    },
    /// An attempt at a field failed.
    FieldRejected {
        /// The field.
        field: Field,
        /// Why.
        error: CollectionError,
        /// The attempt that failed (1 for the first).
        attempt: u32,
        /// Attempts left before collection ends.
        retries_left: u32,
    },
    /// Every field validated: the card can be confirmed and paid.
    CardReady {
        /// Brand and last four.
        card: MaskedCard,
    },
    /// Collection ended without a card.
    Ended {
        /// `collection-retries-exhausted`, `collection-timeout` or `caller-cancelled`.
        reason: FailedReason,
    },
}

/// Where the collector is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CollectorState {
    /// Created; [`Collector::start`] not called.
    Idle,
    /// Asking for a field.
    Collecting(Field),
    /// A card is assembled, waiting for [`Collector::take_card`].
    Ready,
    /// Ended: the card was taken, or collection failed or was cancelled.
    Ended,
}

/// One session's card collection. See the module docs.
pub struct Collector {
    config: CollectorConfig,
    payment_type: PaymentType,
    fields: Vec<Field>,
    index: usize,
    attempt: u32,
    gather: Option<Gatherer>,
    paused_at: Option<MediaTime>,
    /// After a field ends by reaching its length, a `#` the caller adds out of habit is not
    /// the first key of the next field: it is dropped if it comes before this time.
    trailing_terminator_until: Option<MediaTime>,
    entry: SecretDigits,
    brand: Option<Brand>,
    done: Vec<(Field, SecretDigits)>,
    state: CollectorState,
    events: VecDeque<CollectEvent>,
}

impl fmt::Debug for Collector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // State only: the entry and the completed fields are card data.
        f.debug_struct("Collector")
            .field("state", &self.state)
            .field("attempt", &self.attempt)
            .field("paused", &self.paused_at.is_some())
            .finish_non_exhaustive()
    }
}

impl Collector {
    /// A collector for one session.
    pub fn new(config: CollectorConfig) -> Result<Collector, ConfigError> {
        if !(1..=10).contains(&config.min_postal_code_length) {
            return Err(ConfigError::PostalCodeLength(config.min_postal_code_length));
        }
        let payment_type = if config.allowed_payment_types.is_empty()
            || config
                .allowed_payment_types
                .contains(&PaymentType::CreditCard)
        {
            PaymentType::CreditCard
        } else {
            PaymentType::AchDebit
        };
        let mut collector = Collector {
            config,
            payment_type,
            fields: Vec::new(),
            index: 0,
            attempt: 1,
            gather: None,
            paused_at: None,
            trailing_terminator_until: None,
            entry: SecretDigits::new(),
            brand: None,
            done: Vec::new(),
            state: CollectorState::Idle,
            events: VecDeque::new(),
        };
        collector.fields = collector.field_order();
        Ok(collector)
    }

    fn field_order(&self) -> Vec<Field> {
        match self.payment_type {
            PaymentType::CreditCard => {
                let mut fields = vec![Field::CardNumber, Field::ExpirationDate];
                if self.config.security_code_required {
                    fields.push(Field::SecurityCode);
                }
                if self.config.postal_code_required {
                    fields.push(Field::PostalCode);
                }
                fields
            }
            PaymentType::AchDebit => vec![Field::BankRoutingNumber, Field::BankAccountNumber],
        }
    }

    /// Where the collector is.
    pub fn state(&self) -> CollectorState {
        self.state
    }

    /// The payment type being collected.
    pub fn payment_type(&self) -> PaymentType {
        self.payment_type
    }

    /// Starts collection with the first field, at `now`.
    pub fn start(&mut self, now: MediaTime) {
        if self.state == CollectorState::Idle {
            self.begin_field(now);
        }
    }

    /// Switches between card and bank debit (when both are allowed): collection starts again
    /// from the first field of that type.
    pub fn switch_payment_type(
        &mut self,
        now: MediaTime,
        payment_type: PaymentType,
    ) -> Result<(), ConfigError> {
        let allowed = if self.config.allowed_payment_types.is_empty() {
            payment_type == PaymentType::CreditCard
        } else {
            self.config.allowed_payment_types.contains(&payment_type)
        };
        if !allowed {
            return Err(ConfigError::PaymentTypeNotAllowed(payment_type.as_str()));
        }
        self.payment_type = payment_type;
        self.fields = self.field_order();
        self.different_card(now);
        Ok(())
    }

    /// The caller wants to use a different card: everything entered is forgotten and
    /// collection starts again from the first field. Allowed while collecting and while a
    /// card is ready but not yet taken.
    pub fn different_card(&mut self, now: MediaTime) {
        if matches!(self.state, CollectorState::Idle | CollectorState::Ended) {
            return;
        }
        self.forget();
        self.index = 0;
        self.begin_field(now);
    }

    /// The caller cancelled (through the agent): collection ends as `caller-cancelled` and
    /// everything entered is forgotten.
    pub fn cancel(&mut self) {
        if self.state != CollectorState::Ended {
            self.end(FailedReason::CallerCancelled);
        }
    }

    /// Stops the timers while the caller talks to the agent; keys are ignored until resumed.
    pub fn pause(&mut self, now: MediaTime) {
        if self.paused_at.is_none() {
            self.paused_at = Some(now);
            if let Some(gather) = &mut self.gather {
                gather.pause(now);
            }
        }
    }

    /// Resumes the same field where it was, timers continuing from where they stopped.
    pub fn resume(&mut self, now: MediaTime) {
        if self.paused_at.take().is_some() {
            if let Some(gather) = &mut self.gather {
                gather.resume(now);
            }
        }
    }

    /// Whether the collector is paused.
    pub fn is_paused(&self) -> bool {
        self.paused_at.is_some()
    }

    /// Handles a key pressed at `now` (media time of the key press's end).
    pub fn handle_key(&mut self, now: MediaTime, key: Key) {
        let CollectorState::Collecting(field) = self.state else {
            return;
        };
        if self.paused_at.is_some() {
            return;
        }
        if let Some(until) = self.trailing_terminator_until.take() {
            if key.as_char() == '#' && now <= until {
                return;
            }
        }
        let Some(gather) = &mut self.gather else {
            return;
        };
        match gather.handle_key(now, key) {
            GatherStep::Digit(digit) => {
                self.entry.push(b'0' + digit.event_code());
                self.events.push_back(CollectEvent::KeyAccepted {
                    field,
                    digits: self.entry.len(),
                });
                if field == Field::CardNumber {
                    self.track_brand();
                }
                if self.gather.as_ref().and_then(Gatherer::ended).is_some() {
                    let rate = now.rate();
                    let grace =
                        MediaDuration::new(rate.ticks_in(self.config.inter_digit_timeout), rate);
                    self.trailing_terminator_until = Some(now.after(grace));
                    self.complete_field(now);
                }
            }
            GatherStep::Ended(_) => self.complete_field(now),
            GatherStep::Other(other) if other.as_char() == '*' => match self.config.star_key {
                StarKey::ClearField => {
                    self.entry.clear();
                    if let Some(gather) = &mut self.gather {
                        gather.clear(now);
                    }
                    if field == Field::CardNumber {
                        self.brand = None;
                    }
                    self.events.push_back(CollectEvent::FieldCleared { field });
                }
                StarKey::CancelSession => self.end(FailedReason::CallerCancelled),
            },
            GatherStep::Other(_) | GatherStep::Ignored => {}
        }
    }

    /// When [`handle_timeout`](Self::handle_timeout) should be called, in media time.
    pub fn poll_timeout(&self) -> Option<MediaTime> {
        match self.state {
            CollectorState::Collecting(_) => self.gather.as_ref()?.poll_timeout(),
            _ => None,
        }
    }

    /// Handles the first-key or inter-digit timeout at `now`.
    pub fn handle_timeout(&mut self, now: MediaTime) {
        let Some(gather) = &mut self.gather else {
            return;
        };
        match gather.handle_timeout(now) {
            Some(GatherEnd::FirstKeyTimeout) => self.reject(now, CollectionError::Timeout),
            Some(_) => self.complete_field(now),
            None => {}
        }
    }

    /// The next event, if any.
    pub fn poll_event(&mut self) -> Option<CollectEvent> {
        self.events.pop_front()
    }

    /// Takes the assembled card once [`CollectEvent::CardReady`] was reported; the collector
    /// then ends. `None` before that, or if it was already taken.
    pub fn take_card(&mut self) -> Option<SealedCard> {
        if self.state != CollectorState::Ready {
            return None;
        }
        let mut take = |field| {
            self.done
                .iter()
                .position(|(f, _)| *f == field)
                .map(|i| self.done.swap_remove(i).1)
        };
        let inner = match self.payment_type {
            PaymentType::CreditCard => Sealed::Card {
                number: take(Field::CardNumber)?,
                expiry: take(Field::ExpirationDate)?,
                security_code: take(Field::SecurityCode),
                postal_code: take(Field::PostalCode),
                brand: self.brand,
            },
            PaymentType::AchDebit => Sealed::Bank {
                routing_number: take(Field::BankRoutingNumber)?,
                account_number: take(Field::BankAccountNumber)?,
            },
        };
        self.state = CollectorState::Ended;
        self.forget();
        Some(SealedCard { inner })
    }

    fn begin_field(&mut self, now: MediaTime) {
        let field = self.fields[self.index];
        self.entry.clear();
        if field == Field::CardNumber {
            self.brand = None;
        }
        let mut config = GatherConfig::new(self.max_len(field));
        config.first_key_timeout = self.config.first_key_timeout;
        config.inter_digit_timeout = self.config.inter_digit_timeout;
        let mut gather = Gatherer::new(config, now);
        if let Some(paused_at) = self.paused_at {
            gather.pause(paused_at);
        }
        self.gather = Some(gather);
        self.state = CollectorState::Collecting(field);
        self.events.push_back(CollectEvent::FieldStarted {
            field,
            attempt: self.attempt,
        });
    }

    fn max_len(&self, field: Field) -> usize {
        match field {
            Field::CardNumber => 19,
            Field::ExpirationDate => 4,
            Field::SecurityCode => self.brand.map_or(4, Brand::security_code_len),
            Field::PostalCode => 10,
            Field::BankRoutingNumber => 9,
            Field::BankAccountNumber => 17,
        }
    }

    /// Once the IIN settles the brand, the field ends by itself at the brand's longest length.
    fn track_brand(&mut self) {
        let digits = self.entry.expose();
        if brand::is_ambiguous(digits) {
            return;
        }
        if let Some(rule) = brand::lookup(digits) {
            self.brand = Some(rule.brand);
            let longest = rule.lengths.iter().copied().max().unwrap_or(19);
            if let Some(gather) = &mut self.gather {
                gather.set_max_len(longest);
            }
        }
    }

    fn complete_field(&mut self, now: MediaTime) {
        let CollectorState::Collecting(field) = self.state else {
            return;
        };
        let mut value = std::mem::replace(&mut self.entry, SecretDigits::new());
        if let Err(error) = self.validate(field, &mut value) {
            value.clear();
            self.reject(now, error);
            return;
        }
        let brand = (field == Field::CardNumber).then_some(self.brand).flatten();
        self.events
            .push_back(CollectEvent::FieldCompleted { field, brand });
        self.done.retain(|(f, _)| *f != field);
        self.done.push((field, value));
        self.attempt = 1;
        self.index += 1;
        if self.index < self.fields.len() {
            self.begin_field(now);
            return;
        }
        self.gather = None;
        self.state = CollectorState::Ready;
        let masked = self.masked();
        self.events
            .push_back(CollectEvent::CardReady { card: masked });
    }

    fn masked(&self) -> MaskedCard {
        let last4_of = |field| {
            self.done
                .iter()
                .find(|(f, _)| *f == field)
                .map(|(_, d)| d.last_four())
                .unwrap_or_default()
        };
        match self.payment_type {
            PaymentType::CreditCard => MaskedCard {
                payment_type: PaymentType::CreditCard,
                brand: self.brand,
                last4: last4_of(Field::CardNumber),
            },
            PaymentType::AchDebit => MaskedCard {
                payment_type: PaymentType::AchDebit,
                brand: None,
                last4: last4_of(Field::BankAccountNumber),
            },
        }
    }

    /// Checks an entry; for the expiry, rewrites it as MMYYYY with the century resolved.
    fn validate(&mut self, field: Field, value: &mut SecretDigits) -> Result<(), CollectionError> {
        let digits = value.expose();
        let len = digits.len();
        match field {
            Field::CardNumber => {
                let rule = brand::lookup(digits);
                self.brand = rule.map(|r| r.brand);
                let length_ok = match rule {
                    Some(rule) => rule.lengths.contains(&len),
                    None => (12..=19).contains(&len),
                };
                if !length_ok || !luhn::is_valid(digits) {
                    return Err(CollectionError::InvalidCardNumber);
                }
                let restricted = !self.config.valid_card_types.is_empty();
                let accepted = match self.brand {
                    Some(brand) => !restricted || self.config.valid_card_types.contains(&brand),
                    None => !restricted,
                };
                if !accepted {
                    return Err(CollectionError::InvalidCardType);
                }
            }
            Field::ExpirationDate => {
                let expiry =
                    parse_expiry(digits, self.config.today).ok_or(CollectionError::InvalidDate)?;
                let mut resolved = SecretDigits::new();
                for b in digits[..2]
                    .iter()
                    .copied()
                    .chain(format!("{:04}", expiry.year()).bytes())
                {
                    resolved.push(b);
                }
                *value = resolved;
            }
            Field::SecurityCode => {
                let expected = self.brand.map_or(3, Brand::security_code_len);
                if len != expected {
                    return Err(CollectionError::InvalidSecurityCode);
                }
            }
            Field::PostalCode => {
                if len < self.config.min_postal_code_length || len > 10 {
                    return Err(CollectionError::InvalidPostalCode);
                }
            }
            Field::BankRoutingNumber => {
                if !aba::is_valid_routing_number(digits) {
                    return Err(CollectionError::InvalidBankRoutingNumber);
                }
            }
            Field::BankAccountNumber => {
                if !(4..=17).contains(&len) {
                    return Err(CollectionError::InvalidBankAccountNumber);
                }
            }
        }
        Ok(())
    }

    fn reject(&mut self, now: MediaTime, error: CollectionError) {
        let CollectorState::Collecting(field) = self.state else {
            return;
        };
        self.entry.clear();
        let attempts = self.config.retry_limit + 1;
        let retries_left = attempts.saturating_sub(self.attempt);
        self.events.push_back(CollectEvent::FieldRejected {
            field,
            error,
            attempt: self.attempt,
            retries_left,
        });
        if retries_left == 0 {
            let reason = if error == CollectionError::Timeout {
                FailedReason::CollectionTimeout
            } else {
                FailedReason::CollectionRetriesExhausted
            };
            self.end(reason);
            return;
        }
        self.attempt += 1;
        self.begin_field(now);
    }

    fn end(&mut self, reason: FailedReason) {
        self.forget();
        self.gather = None;
        self.state = CollectorState::Ended;
        self.events.push_back(CollectEvent::Ended { reason });
    }

    /// Zeroes and drops everything entered.
    fn forget(&mut self) {
        self.entry.clear();
        for (_, digits) in &mut self.done {
            digits.clear();
        }
        self.done.clear();
        self.brand = None;
        self.attempt = 1;
    }
}
