//! The key-press gatherer: when one field of keypad entry ends, on media time.
//!
//! A gather is what a caller types for one field ("enter your card number, then press hash").
//! It ends on the terminator key (`#`), on reaching the field's maximum length, on the
//! inter-digit timeout after the last key, or on the first-key timeout when no key comes at
//! all. Times are media time: the stream's own clock, so a replay and a live call end fields
//! at the same keys.
//!
//! The gatherer decides *when* a field ends; it never stores the keys. Each digit is handed
//! back to the caller ([`GatherStep::Digit`]) to keep where it belongs, which for card data is
//! the sealed PCI zone (`tonegate-pci`). Only a count is kept here.
//!
//! ```
//! use tonegate_media::gather::{GatherConfig, GatherEnd, GatherStep, Gatherer};
//! use tonegate_media::{ClockRate, Key, MediaTime, Millis};
//!
//! let rate = ClockRate::NARROWBAND;
//! let at = |ms: u64| MediaTime::new(ms * 8, rate);
//! let mut gather = Gatherer::new(GatherConfig::new(4), at(0));
//! let mut digits = Vec::new();
//! for (ms, c) in [(500, '1'), (900, '2'), (1300, '#')] {
//!     match gather.handle_key(at(ms), Key::from_char(c).unwrap()) {
//!         GatherStep::Digit(key) => digits.push(key.as_char()),
//!         GatherStep::Ended(end) => assert_eq!(end, GatherEnd::Terminator),
//!         GatherStep::Other(_) | GatherStep::Ignored => {}
//!     }
//! }
//! assert_eq!(digits, ['1', '2']);
//! ```

use crate::key::Key;
use crate::time::{MediaDuration, MediaTime, Millis};

/// How a gather is configured.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GatherConfig {
    /// Digits after which the gather ends by itself.
    pub max_len: usize,
    /// The key that ends the gather (default `#`); `None` for no terminator.
    pub terminator: Option<Key>,
    /// How long to wait for the first key (default 10 s).
    pub first_key_timeout: Millis,
    /// How long to wait after a key for the next one (default 5 s).
    pub inter_digit_timeout: Millis,
}

impl GatherConfig {
    /// A gather of at most `max_len` digits, ended by `#`, with the default timeouts.
    pub fn new(max_len: usize) -> GatherConfig {
        GatherConfig {
            max_len,
            terminator: Key::from_char('#'),
            first_key_timeout: Millis(10_000.0),
            inter_digit_timeout: Millis(5_000.0),
        }
    }
}

/// Why a gather ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GatherEnd {
    /// The terminator key was pressed.
    Terminator,
    /// The maximum length was reached.
    MaxLength,
    /// No key came within the inter-digit timeout after the last one.
    InterDigitTimeout,
    /// No key at all came within the first-key timeout.
    FirstKeyTimeout,
}

/// What a key did to the gather.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GatherStep {
    /// A digit (0-9) to append to the field. When it reaches the maximum length, the gather
    /// has also ended with [`GatherEnd::MaxLength`]: see [`Gatherer::ended`].
    Digit(Key),
    /// The gather ended.
    Ended(GatherEnd),
    /// A key that is neither a digit nor the terminator (`*`, `A`-`D`): the caller decides
    /// (clear the field, cancel, ignore). It restarts the inter-digit timer.
    Other(Key),
    /// The gather had already ended, or is paused: the key is not part of it.
    Ignored,
}

/// One gather, driven by key presses and timeouts on media time. See the module docs.
#[derive(Clone, Debug)]
pub struct Gatherer {
    config: GatherConfig,
    /// When the current wait started: the gather's start, or the last key.
    waiting_since: MediaTime,
    keys_seen: bool,
    count: usize,
    ended: Option<GatherEnd>,
    paused_at: Option<MediaTime>,
}

impl Gatherer {
    /// Starts a gather at `now`.
    pub fn new(config: GatherConfig, now: MediaTime) -> Gatherer {
        Gatherer {
            config,
            waiting_since: now,
            keys_seen: false,
            count: 0,
            ended: None,
            paused_at: None,
        }
    }

    /// Digits gathered so far.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether no digit has been gathered.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Why the gather ended, once it has.
    pub fn ended(&self) -> Option<GatherEnd> {
        self.ended
    }

    /// Changes the maximum length (a card number's, once its brand is known). If the digits
    /// gathered already reach it, the gather ends with [`GatherEnd::MaxLength`].
    pub fn set_max_len(&mut self, max_len: usize) {
        self.config.max_len = max_len;
        if self.ended.is_none() && self.count >= max_len {
            self.ended = Some(GatherEnd::MaxLength);
        }
    }

    /// Forgets the digits gathered (the caller pressed `*` to start the field again); the
    /// first-key timeout applies again from `now`.
    pub fn clear(&mut self, now: MediaTime) {
        self.count = 0;
        self.keys_seen = false;
        self.waiting_since = now;
    }

    /// Handles a key pressed at `now`.
    pub fn handle_key(&mut self, now: MediaTime, key: Key) -> GatherStep {
        if self.ended.is_some() || self.paused_at.is_some() {
            return GatherStep::Ignored;
        }
        self.keys_seen = true;
        self.waiting_since = now;
        if Some(key) == self.config.terminator {
            self.ended = Some(GatherEnd::Terminator);
            return GatherStep::Ended(GatherEnd::Terminator);
        }
        if key.event_code() > 9 {
            return GatherStep::Other(key);
        }
        self.count += 1;
        if self.count >= self.config.max_len {
            self.ended = Some(GatherEnd::MaxLength);
        }
        GatherStep::Digit(key)
    }

    /// When [`handle_timeout`](Self::handle_timeout) should be called, while the gather runs.
    pub fn poll_timeout(&self) -> Option<MediaTime> {
        if self.ended.is_some() || self.paused_at.is_some() {
            return None;
        }
        let wait = if self.keys_seen {
            self.config.inter_digit_timeout
        } else {
            self.config.first_key_timeout
        };
        let rate = self.waiting_since.rate();
        Some(
            self.waiting_since
                .after(MediaDuration::new(rate.ticks_in(wait), rate)),
        )
    }

    /// Ends the gather if its timeout has passed at `now`.
    pub fn handle_timeout(&mut self, now: MediaTime) -> Option<GatherEnd> {
        let due = self.poll_timeout()?;
        if now < due {
            return None;
        }
        let end = if self.keys_seen {
            GatherEnd::InterDigitTimeout
        } else {
            GatherEnd::FirstKeyTimeout
        };
        self.ended = Some(end);
        Some(end)
    }

    /// Stops the clock (the caller is asking a question); keys are ignored until
    /// [`resume`](Self::resume).
    pub fn pause(&mut self, now: MediaTime) {
        if self.paused_at.is_none() {
            self.paused_at = Some(now);
        }
    }

    /// Starts the clock again: the wait continues where it was paused.
    pub fn resume(&mut self, now: MediaTime) {
        if let Some(paused_at) = self.paused_at.take() {
            self.waiting_since = self.waiting_since.after(now.since(paused_at));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::ClockRate;

    fn at(ms: u64) -> MediaTime {
        MediaTime::new(ms * 8, ClockRate::NARROWBAND)
    }

    fn key(c: char) -> Key {
        Key::from_char(c).unwrap()
    }

    #[test]
    fn the_terminator_ends_the_gather_and_is_not_a_digit() {
        let mut g = Gatherer::new(GatherConfig::new(19), at(0));
        assert_eq!(g.handle_key(at(100), key('4')), GatherStep::Digit(key('4')));
        assert_eq!(
            g.handle_key(at(200), key('#')),
            GatherStep::Ended(GatherEnd::Terminator)
        );
        assert_eq!(g.len(), 1);
        assert_eq!(g.handle_key(at(300), key('5')), GatherStep::Ignored);
        assert_eq!(g.poll_timeout(), None);
    }

    #[test]
    fn reaching_the_maximum_length_ends_the_gather() {
        let mut g = Gatherer::new(GatherConfig::new(4), at(0));
        for (i, c) in "1225".chars().enumerate() {
            assert_eq!(g.ended(), None);
            assert!(matches!(
                g.handle_key(at(i as u64 * 100), key(c)),
                GatherStep::Digit(_)
            ));
        }
        assert_eq!(g.ended(), Some(GatherEnd::MaxLength));
        // Lowering the maximum below what was typed ends a running gather at once.
        let mut g = Gatherer::new(GatherConfig::new(19), at(0));
        for c in "3782822463100".chars() {
            g.handle_key(at(10), key(c));
        }
        g.set_max_len(15);
        assert_eq!(g.ended(), None);
        g.set_max_len(13);
        assert_eq!(g.ended(), Some(GatherEnd::MaxLength));
    }

    #[test]
    fn timeouts_run_on_media_time_first_key_then_inter_digit() {
        let config = GatherConfig {
            first_key_timeout: Millis(8000.0),
            inter_digit_timeout: Millis(3000.0),
            ..GatherConfig::new(19)
        };
        let mut g = Gatherer::new(config, at(1000));
        assert_eq!(g.poll_timeout(), Some(at(9000)));
        assert_eq!(g.handle_timeout(at(8999)), None);
        g.handle_key(at(2000), key('4'));
        assert_eq!(g.poll_timeout(), Some(at(5000)));
        assert_eq!(
            g.handle_timeout(at(5000)),
            Some(GatherEnd::InterDigitTimeout)
        );

        let mut g = Gatherer::new(config, at(0));
        assert_eq!(g.handle_timeout(at(8000)), Some(GatherEnd::FirstKeyTimeout));
    }

    #[test]
    fn other_keys_restart_the_inter_digit_timer_without_counting() {
        let mut g = Gatherer::new(GatherConfig::new(19), at(0));
        g.handle_key(at(100), key('1'));
        assert_eq!(
            g.handle_key(at(4000), key('*')),
            GatherStep::Other(key('*'))
        );
        assert_eq!(
            g.handle_key(at(4100), key('A')),
            GatherStep::Other(key('A'))
        );
        assert_eq!(g.len(), 1);
        assert_eq!(g.poll_timeout(), Some(at(9100)));
        g.clear(at(4200));
        assert!(g.is_empty());
        assert_eq!(
            g.poll_timeout(),
            Some(at(14_200)),
            "first-key timeout again"
        );
    }

    #[test]
    fn a_pause_stops_the_clock_and_ignores_keys() {
        let mut g = Gatherer::new(GatherConfig::new(19), at(0));
        g.handle_key(at(1000), key('1'));
        assert_eq!(g.poll_timeout(), Some(at(6000)));
        g.pause(at(2000));
        assert_eq!(g.poll_timeout(), None);
        assert_eq!(g.handle_timeout(at(60_000)), None);
        assert_eq!(g.handle_key(at(30_000), key('2')), GatherStep::Ignored);
        g.resume(at(62_000));
        // 1 s of the 5 s wait had passed before the pause; 4 s remain.
        assert_eq!(g.poll_timeout(), Some(at(66_000)));
        assert_eq!(g.len(), 1);
    }
}
