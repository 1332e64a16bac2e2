//! One digit stream: merges the key presses of one RTP stream heard both as RFC 4733
//! telephone-events and as in-band tones, so that a tone signalled both ways is one press.
//!
//! Senders that send RFC 4733 often leave the tone in the audio too (or its first 20-40 ms,
//! before they switch to events); a gateway that listens to both then reports every digit
//! twice (FreeSWITCH #2560, rtpengine #1123). The rule here: a press is passed on at once
//! unless a press of the *other* source with the same key and an overlapping span of media
//! time (within [`PressMerger::TOLERANCE_TICKS`]) was already passed on; then it is the same
//! key press heard twice and is dropped. Both sources share the stream's RTP timeline, so
//! their spans are comparable. Two presses of one key are at least 40 ms apart (ITU-T Q.24),
//! more than the tolerance, so real repeats are never merged. Nothing is held back: the first
//! source to finish a press reports it, with no added latency.

use std::fmt;

use crate::key::KeyPress;

/// How many recent presses are remembered (more than can overlap one press).
const REMEMBERED: usize = 8;

/// The de-duplicator for one stream. Its `Debug` shows counters only (never a remembered
/// press); remembered keys are overwritten when their slot is reused and when it is dropped.
#[derive(Clone, Default)]
pub struct PressMerger {
    recent: [Option<KeyPress>; REMEMBERED],
    next: usize,
    merged: u64,
}

impl PressMerger {
    /// Spans closer than this (20 ms at 8 kHz) count as overlapping: the in-band detector
    /// places edges to a few milliseconds, and RFC 4733 senders start events a packet late.
    pub const TOLERANCE_TICKS: u64 = 160;

    /// A merger that has seen nothing.
    pub fn new() -> PressMerger {
        PressMerger::default()
    }

    /// Offers a finished press. Returns it when it is new, `None` when the other source
    /// already reported it.
    pub fn offer(&mut self, press: KeyPress) -> Option<KeyPress> {
        let start = press.start().ticks();
        let end = start + press.duration().ticks();
        let duplicate = self.recent.iter().flatten().any(|seen| {
            let s = seen.start().ticks();
            let e = s + seen.duration().ticks();
            seen.source() != press.source()
                && seen.key() == press.key()
                && start <= e + Self::TOLERANCE_TICKS
                && s <= end + Self::TOLERANCE_TICKS
        });
        if duplicate {
            self.merged += 1;
            return None;
        }
        if let Some(old) = self.recent[self.next].as_mut() {
            old.forget_key();
        }
        self.recent[self.next] = Some(press.clone());
        self.next = (self.next + 1) % REMEMBERED;
        Some(press)
    }

    /// Presses dropped as duplicates so far.
    pub fn merged(&self) -> u64 {
        self.merged
    }
}

impl fmt::Debug for PressMerger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PressMerger")
            .field("remembered", &self.recent.iter().flatten().count())
            .field("merged", &self.merged)
            .finish()
    }
}

impl Drop for PressMerger {
    fn drop(&mut self) {
        for press in self.recent.iter_mut().flatten() {
            press.forget_key();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::{Dbm0, Key, Source};
    use crate::time::{ClockRate, MediaDuration, MediaTime};

    fn press(key: char, start: u64, ticks: u64, source: Source) -> KeyPress {
        let rate = ClockRate::NARROWBAND;
        KeyPress::new(
            Key::from_char(key).unwrap(),
            MediaTime::new(start, rate),
            MediaDuration::new(ticks, rate),
            Some(Dbm0(-10)),
            source,
        )
    }

    #[test]
    fn a_tone_signalled_both_ways_is_one_press_whichever_comes_first() {
        let mut m = PressMerger::new();
        assert!(m.offer(press('4', 8000, 800, Source::Rfc4733)).is_some());
        assert!(m.offer(press('4', 8030, 780, Source::Inband)).is_none());
        // In-band first this time (events ended late), a leaked partial tone included.
        assert!(m.offer(press('5', 16000, 400, Source::Inband)).is_some());
        assert!(m.offer(press('5', 16100, 800, Source::Rfc4733)).is_none());
        assert_eq!(m.merged(), 2);
    }

    #[test]
    fn repeats_of_one_key_and_different_keys_are_kept() {
        let mut m = PressMerger::new();
        assert!(m.offer(press('1', 0, 400, Source::Rfc4733)).is_some());
        // Same key again 50 ms after the first ended, in-band: a second press.
        assert!(m.offer(press('1', 800, 400, Source::Inband)).is_some());
        // A different key overlapping: kept.
        assert!(m.offer(press('2', 0, 400, Source::Inband)).is_some());
        // Same source twice: the source's own decoder already split them; kept.
        assert!(m.offer(press('3', 4000, 400, Source::Rfc4733)).is_some());
        assert!(m.offer(press('3', 4000, 400, Source::Rfc4733)).is_some());
        assert_eq!(m.merged(), 0);
    }
}
