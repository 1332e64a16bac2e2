//! Keys and key presses: what the caller pressed, when, and how it was heard.
//!
//! Key presses are card data while a payment session is active, so neither [`Key`] nor
//! [`KeyPress`] shows the key in its `Debug` output. Whoever really needs the key asks for it
//! with [`KeyPress::key`] and [`Key::as_char`]; those calls are easy to find in review.

use std::fmt;

use crate::time::{MediaDuration, MediaTime};

/// A DTMF key: `0`-`9`, `*`, `#`, `A`-`D` (RFC 4733 event codes 0-15).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Key(u8);

impl Key {
    /// The key for RFC 4733 event code `code`, or `None` for codes above 15 (flash, tones and
    /// other non-key events), which are never digits.
    pub fn from_event_code(code: u8) -> Option<Key> {
        (code <= 15).then_some(Key(code))
    }

    /// The key for a character (`0`-`9`, `*`, `#`, `A`-`D`, lower case accepted).
    pub fn from_char(c: char) -> Option<Key> {
        let code = match c.to_ascii_uppercase() {
            d @ '0'..='9' => d as u8 - b'0',
            '*' => 10,
            '#' => 11,
            l @ 'A'..='D' => l as u8 - b'A' + 12,
            _ => return None,
        };
        Some(Key(code))
    }

    /// The RFC 4733 event code of this key (0-15).
    pub fn event_code(self) -> u8 {
        self.0
    }

    /// The key as a character. This reveals the key: call it only where the key is needed.
    pub fn as_char(self) -> char {
        match self.0 {
            d @ 0..=9 => char::from(b'0' + d),
            10 => '*',
            11 => '#',
            l => char::from(b'A' + l - 12),
        }
    }

    /// The key's tone pair (ITU-T Q.23): its low-group and high-group frequencies in Hz.
    pub fn frequencies(self) -> (f32, f32) {
        use crate::goertzel::FREQUENCIES;
        let (row, column) = match self.as_char() {
            c @ '1'..='3' => (0, c as usize - '1' as usize),
            c @ '4'..='6' => (1, c as usize - '4' as usize),
            c @ '7'..='9' => (2, c as usize - '7' as usize),
            '*' => (3, 0),
            '0' => (3, 1),
            '#' => (3, 2),
            c => (c as usize - 'A' as usize, 3),
        };
        (FREQUENCIES[row], FREQUENCIES[4 + column])
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Key(<redacted>)")
    }
}

/// How a key press was heard.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Source {
    /// RTP telephone-events (RFC 4733, formerly RFC 2833).
    Rfc4733,
    /// Tones in the audio (in-band DTMF).
    Inband,
}

impl Source {
    /// The stable name used in reports and JSON: `rfc4733` or `inband`.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Rfc4733 => "rfc4733",
            Source::Inband => "inband",
        }
    }
}

/// Power level of a tone in dBm0, 0 (loudest) down to -63 (RFC 4733 volume field, negated).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Dbm0(pub i8);

/// One finished key press.
#[derive(Clone, PartialEq, Eq)]
pub struct KeyPress {
    key: Key,
    start: MediaTime,
    duration: MediaDuration,
    volume: Option<Dbm0>,
    source: Source,
}

impl KeyPress {
    /// A key press of `key` heard from `source`, starting at `start` for `duration`.
    pub fn new(
        key: Key,
        start: MediaTime,
        duration: MediaDuration,
        volume: Option<Dbm0>,
        source: Source,
    ) -> KeyPress {
        KeyPress {
            key,
            start,
            duration,
            volume,
            source,
        }
    }

    /// The key pressed. This is card data during a payment: hand it only to the PCI zone.
    pub fn key(&self) -> Key {
        self.key
    }

    /// When the press started, on the stream's media timeline.
    pub fn start(&self) -> MediaTime {
        self.start
    }

    /// How long the key was held.
    pub fn duration(&self) -> MediaDuration {
        self.duration
    }

    /// The level reported or measured, if known.
    pub fn volume(&self) -> Option<Dbm0> {
        self.volume
    }

    /// How the press was heard.
    pub fn source(&self) -> Source {
        self.source
    }
}

impl zeroize::Zeroize for Key {
    /// Overwrites the key (its code becomes 0) with a write the compiler keeps, for state that
    /// remembered a key it no longer needs.
    fn zeroize(&mut self) {
        self.0.zeroize();
    }
}

impl KeyPress {
    /// Overwrites the remembered key (see [`Key`]'s `Zeroize`); the timing is kept.
    pub(crate) fn forget_key(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.key);
    }
}

impl fmt::Debug for KeyPress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyPress")
            .field("key", &"<redacted>")
            .field("start", &self.start)
            .field("duration", &self.duration)
            .field("volume", &self.volume)
            .field("source", &self.source)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::ClockRate;

    #[test]
    fn every_key_round_trips_through_its_character_and_code() {
        for (code, c) in "0123456789*#ABCD".chars().enumerate() {
            let key = Key::from_event_code(code as u8).unwrap();
            assert_eq!(key.as_char(), c);
            assert_eq!(Key::from_char(c), Some(key));
        }
        assert_eq!(Key::from_event_code(16), None);
        assert_eq!(Key::from_char('E'), None);
    }

    #[test]
    fn debug_output_is_the_same_whatever_the_key() {
        let rate = ClockRate::NARROWBAND;
        let shown = |c: char| {
            let key = Key::from_char(c).unwrap();
            let press = KeyPress::new(
                key,
                MediaTime::new(4242, rate),
                MediaDuration::new(800, rate),
                Some(Dbm0(-10)),
                Source::Rfc4733,
            );
            format!("{press:?} {press:#?} {key:?}")
        };
        let reference = shown('0');
        assert!(reference.contains("<redacted>"));
        for c in "123456789*#ABCD".chars() {
            assert_eq!(shown(c), reference, "Debug output depends on the key");
        }
    }
}
