//! When to try a failed delivery again: exponential backoff with full jitter.
//!
//! The ceiling after `n` failed attempts is `min(cap, base * factor^(n-1))`; with full jitter
//! the wait is drawn uniformly from `[0, ceiling]` (the "full jitter" of the AWS architecture
//! blog's backoff study), which spreads the retries of many deliveries that failed together (a
//! receiver that was down for everyone) instead of sending them back in lockstep.

use std::time::Duration;

/// How the wait before each retry is drawn.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Jitter {
    /// Uniform in `[0, ceiling]` (default).
    Full,
    /// Exactly the ceiling: deterministic, for tests and for reading logs.
    None,
}

/// Exponential backoff: `base`, multiplied by `factor` after each failed attempt, up to `cap`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Backoff {
    /// The ceiling after the first failed attempt (default 1 s).
    pub base: Duration,
    /// What the ceiling is multiplied by after each further failure (default 2; at least 1).
    pub factor: f64,
    /// The largest ceiling (default 5 min).
    pub cap: Duration,
    /// How the wait is drawn under the ceiling (default [`Jitter::Full`]).
    pub jitter: Jitter,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            base: Duration::from_secs(1),
            factor: 2.0,
            cap: Duration::from_secs(5 * 60),
            jitter: Jitter::Full,
        }
    }
}

impl Backoff {
    /// The ceiling of the wait after `failures` failed attempts (at least 1).
    pub fn ceiling(&self, failures: u32) -> Duration {
        let exponent = failures.saturating_sub(1).min(1024);
        // In f64 so that a large exponent saturates at the cap instead of overflowing.
        let grown = self.base.as_secs_f64() * self.factor.powi(exponent as i32);
        if grown.is_finite() && grown < self.cap.as_secs_f64() {
            Duration::from_secs_f64(grown)
        } else {
            self.cap
        }
    }

    /// The wait after `failures` failed attempts; `unit` is a uniform draw from `[0, 1]`
    /// (taken as an argument so that the schedule is testable).
    pub fn delay_with(&self, failures: u32, unit: f64) -> Duration {
        let ceiling = self.ceiling(failures);
        match self.jitter {
            Jitter::None => ceiling,
            Jitter::Full => ceiling.mul_f64(unit.clamp(0.0, 1.0)),
        }
    }

    /// The wait after `failures` failed attempts, drawn from the thread's random generator.
    pub fn delay(&self, failures: u32) -> Duration {
        self.delay_with(failures, rand::random_range(0.0..=1.0))
    }

    /// Why this backoff cannot be used, if it cannot.
    pub(crate) fn check(&self) -> Result<(), String> {
        if self.base.is_zero() {
            return Err("backoff base must be more than 0".into());
        }
        if !(self.factor.is_finite() && self.factor >= 1.0) {
            return Err(format!(
                "backoff factor must be at least 1, got {}",
                self.factor
            ));
        }
        if self.cap < self.base {
            return Err(format!(
                "backoff cap {:?} is less than its base {:?}",
                self.cap, self.base
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn the_ceiling_doubles_from_the_base_up_to_the_cap() {
        let b = Backoff::default();
        let ceilings: Vec<Duration> = (1..=11).map(|n| b.ceiling(n)).collect();
        assert_eq!(
            ceilings,
            [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300].map(secs)
        );
        assert_eq!(b.ceiling(0), secs(1), "no failure counts as the first");
        assert_eq!(b.ceiling(u32::MAX), secs(300), "saturates, no overflow");
    }

    #[test]
    fn full_jitter_draws_under_the_ceiling() {
        let b = Backoff::default();
        assert_eq!(b.delay_with(3, 0.0), Duration::ZERO);
        assert_eq!(b.delay_with(3, 0.5), secs(2));
        assert_eq!(b.delay_with(3, 1.0), secs(4));
        for _ in 0..1000 {
            assert!(b.delay(4) <= secs(8));
        }
    }

    #[test]
    fn without_jitter_the_wait_is_the_ceiling() {
        let b = Backoff {
            jitter: Jitter::None,
            ..Backoff::default()
        };
        assert_eq!(b.delay(1), secs(1));
        assert_eq!(b.delay(2), secs(2));
    }

    #[test]
    fn nonsense_is_refused() {
        let ok = Backoff::default();
        assert!(ok.check().is_ok());
        assert!(Backoff { factor: 0.5, ..ok }.check().is_err());
        assert!(Backoff {
            factor: f64::NAN,
            ..ok
        }
        .check()
        .is_err());
        assert!(Backoff {
            base: Duration::ZERO,
            ..ok
        }
        .check()
        .is_err());
        assert!(Backoff {
            cap: Duration::from_millis(10),
            ..ok
        }
        .check()
        .is_err());
    }
}
