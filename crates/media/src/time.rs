//! Media time: RTP timestamps extended to 64 bits, with their clock rate.
//!
//! tonegate keeps three clocks apart (see `docs/architecture.md`): "now" (`std::time::Instant`,
//! wall clock, only for fallbacks), media time (this module), and capture time (pcap record
//! timestamps, only for reports). A [`MediaTime`] is a point on one stream's RTP timeline; a
//! [`MediaDuration`] a span on it. Both carry their [`ClockRate`], so converting to
//! milliseconds never guesses.

use std::fmt;
use std::num::NonZeroU32;

/// Clock rate of an RTP timeline, in ticks per second (8000 for telephone-event/8000).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClockRate(NonZeroU32);

impl ClockRate {
    /// 8 kHz, the clock of G.711 and of `telephone-event/8000`.
    pub const NARROWBAND: ClockRate = ClockRate(NonZeroU32::new(8000).unwrap());

    /// A clock rate of `hz` ticks per second; `None` for zero.
    pub fn new(hz: u32) -> Option<ClockRate> {
        NonZeroU32::new(hz).map(ClockRate)
    }

    /// Ticks per second.
    pub fn hz(self) -> u32 {
        self.0.get()
    }

    /// How many ticks `ms` milliseconds is on this clock (rounded down).
    pub fn ticks_in(self, ms: Millis) -> u64 {
        (ms.0 * f64::from(self.hz()) / 1000.0) as u64
    }
}

impl Default for ClockRate {
    fn default() -> Self {
        ClockRate::NARROWBAND
    }
}

/// A number of milliseconds, for configuration and reports (never for arithmetic on the media
/// timeline, which is done in ticks).
#[derive(Clone, Copy, Debug, PartialEq, PartialOrd, Default)]
pub struct Millis(pub f64);

impl fmt::Display for Millis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:.1} ms", self.0)
    }
}

/// A point on an RTP stream's timeline: the RTP timestamp extended to 64 bits (wrap-safe; see
/// [`crate::extend`]), with its clock rate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MediaTime {
    ticks: u64,
    rate: ClockRate,
}

impl MediaTime {
    /// The point `ticks` (an extended RTP timestamp) on a timeline clocked at `rate`.
    pub fn new(ticks: u64, rate: ClockRate) -> MediaTime {
        MediaTime { ticks, rate }
    }

    /// The extended RTP timestamp.
    pub fn ticks(self) -> u64 {
        self.ticks
    }

    /// The clock rate of the timeline.
    pub fn rate(self) -> ClockRate {
        self.rate
    }

    /// The span from `earlier` to `self`, or zero if `earlier` is later.
    pub fn since(self, earlier: MediaTime) -> MediaDuration {
        MediaDuration::new(self.ticks.saturating_sub(earlier.ticks), self.rate)
    }

    /// Signed distance from `origin` to `self` in milliseconds (negative when `self` is
    /// earlier: a press recovered from redundancy can start before a stream's first packet).
    pub fn millis_from(self, origin: MediaTime) -> Millis {
        let ticks = self.ticks as f64 - origin.ticks as f64;
        Millis(ticks * 1000.0 / f64::from(self.rate.hz()))
    }

    /// This point moved forward by `d`.
    pub fn after(self, d: MediaDuration) -> MediaTime {
        MediaTime::new(self.ticks + d.ticks(), self.rate)
    }
}

/// A span of media time, in ticks of its clock.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MediaDuration {
    ticks: u64,
    rate: ClockRate,
}

impl MediaDuration {
    /// A span of `ticks` on a clock of `rate`.
    pub fn new(ticks: u64, rate: ClockRate) -> MediaDuration {
        MediaDuration { ticks, rate }
    }

    /// Length in ticks.
    pub fn ticks(self) -> u64 {
        self.ticks
    }

    /// Length in milliseconds.
    pub fn as_millis(self) -> Millis {
        Millis(self.ticks as f64 * 1000.0 / f64::from(self.rate.hz()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_convert_to_milliseconds_with_their_own_rate() {
        let d = MediaDuration::new(800, ClockRate::NARROWBAND);
        assert_eq!(d.as_millis(), Millis(100.0));
        let wide = MediaDuration::new(800, ClockRate::new(16000).unwrap());
        assert_eq!(wide.as_millis(), Millis(50.0));
        assert_eq!(ClockRate::NARROWBAND.ticks_in(Millis(25.0)), 200);
        let rate = ClockRate::NARROWBAND;
        let origin = MediaTime::new(1000, rate);
        assert_eq!(
            MediaTime::new(1800, rate).millis_from(origin),
            Millis(100.0)
        );
        assert_eq!(MediaTime::new(840, rate).millis_from(origin), Millis(-20.0));
    }
}
