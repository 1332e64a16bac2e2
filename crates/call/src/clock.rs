//! One media clock per call, across SSRC changes and silences.
//!
//! Collection timeouts run on media time (`docs/architecture.md`, "Three clocks"), but a call's RTP timeline is
//! per SSRC: a sender that restarts (re-INVITE, transfer) starts a new SSRC with a random
//! timestamp, and a caller on hold sends nothing. [`CallClock`] maps every SSRC's extended
//! timestamps onto one continuous call timeline: a new SSRC continues from where the last one
//! was, and when media stops, wall-clock time since the last packet stands in for media time
//! (the documented fallback).

use std::collections::HashMap;
use std::time::Instant;

use tonegate_media::{ClockRate, MediaDuration, MediaTime};

/// The call's media clock. See the module docs.
#[derive(Debug)]
pub struct CallClock {
    rate: ClockRate,
    /// Per SSRC: call time = stream ticks + offset (i128 so either side may be larger).
    offsets: HashMap<u32, i128>,
    /// The latest call time reached, and when (wall clock) it was reached.
    latest: u64,
    latest_at: Instant,
}

impl CallClock {
    /// A clock at `rate` (8000 for narrowband telephony) at call time 0 at `start`.
    pub fn new(rate: ClockRate, start: Instant) -> CallClock {
        CallClock {
            rate,
            offsets: HashMap::new(),
            latest: 0,
            latest_at: start,
        }
    }

    /// Maps a point of `ssrc`'s timeline (extended ticks) observed at `now` onto the call
    /// timeline. The first point of a new SSRC continues the call timeline where it is.
    pub fn map(&mut self, now: Instant, ssrc: u32, stream: MediaTime) -> MediaTime {
        let resume_at = self.now(now).ticks();
        let offset = *self
            .offsets
            .entry(ssrc)
            .or_insert_with(|| i128::from(resume_at) - i128::from(stream.ticks()));
        let call = (i128::from(stream.ticks()) + offset).max(0) as u64;
        if call > self.latest {
            self.latest = call;
            self.latest_at = now;
        }
        MediaTime::new(call, self.rate)
    }

    /// The call time at `now`: the latest media time, plus the wall-clock time since it was
    /// reached (media has stopped, or not yet started).
    pub fn now(&self, now: Instant) -> MediaTime {
        let since = now.saturating_duration_since(self.latest_at);
        let ticks = (since.as_secs_f64() * f64::from(self.rate.hz())) as u64;
        MediaTime::new(self.latest, self.rate).after(MediaDuration::new(ticks, self.rate))
    }

    /// The wall-clock instant at which the call clock reaches `at`, if media stays silent.
    pub fn instant_of(&self, now: Instant, at: MediaTime) -> Instant {
        let current = self.now(now);
        let ahead = at.ticks().saturating_sub(current.ticks());
        now + std::time::Duration::from_secs_f64(ahead as f64 / f64::from(self.rate.hz()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn t(ticks: u64) -> MediaTime {
        MediaTime::new(ticks, ClockRate::NARROWBAND)
    }

    #[test]
    fn a_new_ssrc_continues_the_call_timeline() {
        let start = Instant::now();
        let mut clock = CallClock::new(ClockRate::NARROWBAND, start);
        assert_eq!(clock.map(start, 1, t(1_000_000)), t(0));
        let later = start + Duration::from_millis(100);
        assert_eq!(clock.map(later, 1, t(1_000_800)), t(800));
        // The sender restarts with a wild timestamp 20 ms later.
        let restart = later + Duration::from_millis(20);
        assert_eq!(clock.map(restart, 2, t(77)), t(960));
        assert_eq!(
            clock.map(restart + Duration::from_millis(20), 2, t(237)),
            t(1120)
        );
    }

    #[test]
    fn before_any_media_the_wall_clock_runs_from_the_call_s_start() {
        let start = Instant::now();
        let mut clock = CallClock::new(ClockRate::NARROWBAND, start);
        assert_eq!(clock.now(start + Duration::from_millis(500)), t(4000));
        // The first packet, 1 s in, continues from there.
        assert_eq!(
            clock.map(start + Duration::from_secs(1), 7, t(123)),
            t(8000)
        );
    }

    #[test]
    fn silence_advances_the_clock_on_the_wall_clock() {
        let start = Instant::now();
        let mut clock = CallClock::new(ClockRate::NARROWBAND, start);
        clock.map(start, 1, t(5000));
        assert_eq!(clock.now(start + Duration::from_secs(2)), t(16_000));
        assert_eq!(
            clock.instant_of(start, t(8000)),
            start + Duration::from_secs(1)
        );
    }
}
