//! DTMF tones as samples: each key's tone pair (ITU-T Q.23, from
//! [`tonegate_media::Key::frequencies`]) at a level in dBm0, 8 kHz.

use std::f64::consts::PI;

use tonegate_media::Key;

/// Samples per second.
pub const RATE: f64 = 8000.0;

/// Peak amplitude of a sine at `dbm0` (G.711's full-scale sine is +3.14 dBm0).
pub fn amplitude(dbm0: f64) -> f64 {
    32767.0 * 10f64.powf((dbm0 - f64::from(tonegate_media::g711::FULL_SCALE_SINE_DBM0)) / 20.0)
}

/// `samples` of `key`'s tone pair, each tone at `dbm0`, starting at phase 0.
pub fn dtmf(key: Key, dbm0: f64, samples: usize) -> Vec<i16> {
    dtmf_from(key, dbm0, 0, samples)
}

/// Samples in `ms` milliseconds at 8 kHz.
pub fn samples_in(ms: u32) -> usize {
    (ms * 8) as usize
}

/// `samples` of `key`'s tone pair at `dbm0` per tone, the phase of sample `first` of a stream
/// that has played the pair since sample 0 (so consecutive calls join without a click).
pub fn dtmf_from(key: Key, dbm0: f64, first: u64, samples: usize) -> Vec<i16> {
    let (low, high) = key.frequencies();
    let a = amplitude(dbm0);
    (0..samples as u64)
        .map(|n| {
            let t = (first + n) as f64 / RATE;
            let v = a
                * ((2.0 * PI * f64::from(low) * t).sin() + (2.0 * PI * f64::from(high) * t).sin());
            v.round().clamp(-32768.0, 32767.0) as i16
        })
        .collect()
}
