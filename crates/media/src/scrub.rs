//! Tone scrubbing: key tones taken out of audio that is relayed while a payment is collected.
//!
//! In relay mode the gateway forwards the caller's audio to the other party (an agent, a
//! recorder, a speech pipeline). While a card is keyed, the caller's DTMF tones are card data:
//! forwarded as they are, anyone with the audio could decode the number. [`ToneScrubber`] looks
//! at each packet as it is forwarded (no added delay) and replaces the whole packet's audio with
//! silence when any 10 ms of it might hold a key's tone pair, and the packet after such a one as
//! well (a tone's tail).
//!
//! The test is deliberately looser than the detector's ([`crate::inband`]): it must catch every
//! tone, including its ragged first and last blocks, and a packet of speech scrubbed by mistake
//! costs 20 ms of a caller's voice during card entry. Per 80-sample block: the strongest
//! low-group and high-group bins each at or above -44 dBm0, within 14 dB of each other, holding
//! together at least 35 % of the block's energy. No frequency, duration or onset test. A tone
//! that starts in a packet's last block and covers less than 35 % of it (28 samples, 3.5 ms)
//! is forwarded up to that point: far too short for any detector (they need 23-40 ms) to
//! decode. Measured by the tests below and in `crates/gateway/tests/serve.rs`: forwarded audio
//! of in-band key presses made during a session gives no press to tonegate's detector.
//!
//! Silence is the codec's zero: 0xFF for PCMU, 0xD5 for PCMA, zeros for L16. Sans-IO.

use crate::audio::AudioCodec;
use crate::g711::Law;
use crate::goertzel::{Bank, Kernel, BLOCK};
use crate::inband::{bank, energy_of};

/// Per-block thresholds of the scrubber (see the module documentation).
const MIN_LEVEL_DBM0: f32 = -44.0;
const MAX_TWIST_DB: f32 = 14.0;
const MIN_SHARE: f32 = 0.35;

/// Removes key tones from relayed audio, packet by packet. One per forwarded stream.
#[derive(Clone, Debug, Default)]
pub struct ToneScrubber {
    /// The previous packet was scrubbed for a tone of its own (not for hangover).
    hangover: bool,
    scrubbed: u64,
    /// The Goertzel kernel its filters run (the detector's, [`crate::inband::InbandConfig::kernel`]).
    kernel: Kernel,
}

impl ToneScrubber {
    /// A scrubber for one stream, on the fastest kernel this CPU runs.
    pub fn new() -> ToneScrubber {
        ToneScrubber::default()
    }

    /// A scrubber for one stream whose filters run `kernel`.
    pub fn with_kernel(kernel: Kernel) -> ToneScrubber {
        ToneScrubber {
            kernel: kernel.or_portable(),
            ..ToneScrubber::default()
        }
    }

    /// Packets scrubbed so far.
    pub fn scrubbed(&self) -> u64 {
        self.scrubbed
    }

    /// Scrubs one packet's `payload` in place: silence when it, or the packet before it, might
    /// hold a key tone. Returns whether it did.
    pub fn scrub(&mut self, codec: AudioCodec, payload: &mut [u8]) -> bool {
        let mut samples = [0i16; 1280];
        let n = decode(codec, payload, &mut samples);
        let toned = might_hold_a_key(self.kernel, &samples[..n]);
        let scrub = toned || self.hangover;
        self.hangover = toned;
        if scrub {
            silence(codec, payload);
            self.scrubbed += 1;
        }
        scrub
    }
}

/// Decodes up to `out.len()` samples; returns how many.
fn decode(codec: AudioCodec, payload: &[u8], out: &mut [i16]) -> usize {
    match codec {
        AudioCodec::Pcmu | AudioCodec::Pcma => {
            let table = if codec == AudioCodec::Pcmu {
                Law::Mu.table()
            } else {
                Law::A.table()
            };
            let n = payload.len().min(out.len());
            for (o, &b) in out.iter_mut().zip(&payload[..n]) {
                *o = table[usize::from(b)];
            }
            n
        }
        AudioCodec::L16 => {
            let n = (payload.len() / 2).min(out.len());
            for (o, b) in out.iter_mut().zip(payload.chunks_exact(2)).take(n) {
                *o = i16::from_be_bytes([b[0], b[1]]);
            }
            n
        }
    }
}

fn silence(codec: AudioCodec, payload: &mut [u8]) {
    let zero = match codec {
        AudioCodec::Pcmu => Law::Mu.encode(0),
        AudioCodec::Pcma => Law::A.encode(0),
        AudioCodec::L16 => 0,
    };
    payload.fill(zero);
}

/// Whether any 80-sample block of `samples` (the last one moved back to end with the packet;
/// a packet shorter than a block padded with zeros) might hold a key's tone pair.
fn might_hold_a_key(kernel: Kernel, samples: &[i16]) -> bool {
    if samples.is_empty() {
        return false;
    }
    let mut starts: Vec<usize> = (0..samples.len().saturating_sub(BLOCK - 1))
        .step_by(BLOCK)
        .collect();
    if !samples.len().is_multiple_of(BLOCK) || samples.len() < BLOCK {
        starts.push(samples.len().saturating_sub(BLOCK));
    }
    starts.into_iter().any(|s| {
        let mut block = [0.0f32; BLOCK];
        for (b, &x) in block.iter_mut().zip(&samples[s..]) {
            *b = f32::from(x);
        }
        block_might_hold_a_key(kernel, &block)
    })
}

fn block_might_hold_a_key(kernel: Kernel, block: &[f32; BLOCK]) -> bool {
    let energy = Bank::energy(block);
    let min = energy_of(MIN_LEVEL_DBM0);
    // No bin can hold more than BLOCK times the block's energy: quiet blocks stop here.
    if BLOCK as f32 * energy < min {
        return false;
    }
    let bank = bank(kernel);
    let spectrum = bank.analyse_with_energy(block, energy);
    let bins: [f32; 8] = std::array::from_fn(|k| {
        bank.window(k, spectrum.halves[0][k], spectrum.halves[1][k])
            .norm_sqr()
    });
    let low = bins[..4].iter().fold(0.0f32, |m, &e| m.max(e));
    let high = bins[4..].iter().fold(0.0f32, |m, &e| m.max(e));
    let twist = 10f32.powf(MAX_TWIST_DB / 10.0);
    low >= min
        && high >= min
        && high <= low * twist
        && low <= high * twist
        && 2.0 / BLOCK as f32 * (low + high) >= MIN_SHARE * energy
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inband::{InbandDetector, InbandEvent};
    use crate::time::{ClockRate, MediaTime};
    use std::f32::consts::PI;

    /// A key of each row and column: (key, low tone, high tone), from the one table
    /// ([`Key::frequencies`]).
    fn keys() -> [(char, f32, f32); 4] {
        ['1', '5', '9', 'D'].map(|c| {
            let (low, high) = tones(c);
            (c, low, high)
        })
    }

    fn tones(key: char) -> (f32, f32) {
        crate::Key::from_char(key).unwrap().frequencies()
    }

    fn amplitude(dbm0: f32) -> f32 {
        32767.0 * 10f32.powf((dbm0 - crate::g711::FULL_SCALE_SINE_DBM0) / 20.0)
    }

    /// `ms` of silence, a key's tones for `tone_ms` from sample `at`, mu-law packets of 160.
    fn stream(at: usize, tone_ms: usize, low: f32, high: f32, ms: usize) -> Vec<Vec<u8>> {
        let n = ms * 8;
        let end = at + tone_ms * 8;
        let audio: Vec<u8> = (0..n)
            .map(|i| {
                let t = i as f32 / 8000.0;
                let x = if (at..end).contains(&i) {
                    amplitude(-10.0)
                        * ((2.0 * PI * low * t).sin() + (2.0 * PI * high * t + 1.0).sin())
                } else {
                    0.0
                };
                Law::Mu.encode(x as i16)
            })
            .collect();
        audio.chunks(160).map(<[u8]>::to_vec).collect()
    }

    fn presses(packets: &[Vec<u8>]) -> usize {
        let mut d = InbandDetector::default();
        let mut count = 0;
        for (i, p) in packets.iter().enumerate() {
            let samples: Vec<i16> = p.iter().map(|&b| Law::Mu.table()[usize::from(b)]).collect();
            d.handle_samples(
                MediaTime::new(i as u64 * 160, ClockRate::NARROWBAND),
                &samples,
            )
            .unwrap();
        }
        d.finish();
        while let Some(e) = d.poll_event() {
            count += usize::from(matches!(e, InbandEvent::Press(_)));
        }
        count
    }

    #[test]
    fn key_tones_at_every_alignment_leave_nothing_a_detector_hears() {
        for (key, low, high) in keys() {
            for at in (800..960).step_by(7) {
                let mut packets = stream(at, 60, low, high, 300);
                assert_eq!(presses(&packets), 1, "{key} unscrubbed is heard");
                let mut s = ToneScrubber::new();
                let mut leaked = 0;
                for (i, p) in packets.iter_mut().enumerate() {
                    let scrubbed = s.scrub(AudioCodec::Pcmu, p);
                    let (first, last) = (i * 160, i * 160 + 160);
                    let tone = first.max(at)..last.min(at + 480);
                    if !scrubbed && !tone.is_empty() {
                        leaked += tone.len();
                    }
                }
                assert_eq!(presses(&packets), 0, "{key} at {at}: a press got through");
                assert!(
                    leaked <= 28,
                    "{key} at {at}: {leaked} samples of tone forwarded"
                );
            }
        }
    }

    #[test]
    fn silence_noise_and_a_single_tone_pass_untouched() {
        let mut s = ToneScrubber::new();
        let mut quiet = vec![0xFFu8; 160];
        assert!(!s.scrub(AudioCodec::Pcmu, &mut quiet));
        let mut state = 1u32;
        let mut noise: Vec<u8> = (0..160)
            .map(|_| {
                state = state.wrapping_mul(1_103_515_245).wrapping_add(12345);
                Law::Mu.encode(((state >> 16) as i16) / 8)
            })
            .collect();
        let before = noise.clone();
        assert!(!s.scrub(AudioCodec::Pcmu, &mut noise));
        assert_eq!(noise, before, "untouched");
        for (_, low, _) in keys() {
            // A lone tone (the same frequency twice): nothing in the other group.
            let mut one = stream(0, 20, low, low, 20).remove(0);
            assert!(!s.scrub(AudioCodec::Pcmu, &mut one), "{low} Hz alone");
        }
        assert_eq!(s.scrubbed(), 0);
    }

    #[test]
    fn a_scrubbed_packet_is_the_codecs_silence_and_the_next_one_too() {
        let (low, high) = tones('5');
        let mut packets = stream(0, 20, low, high, 60);
        let mut s = ToneScrubber::new();
        assert!(s.scrub(AudioCodec::Pcmu, &mut packets[0]));
        assert!(packets[0].iter().all(|&b| b == 0xFF));
        assert!(s.scrub(AudioCodec::Pcmu, &mut packets[1]), "hangover");
        assert!(!s.scrub(AudioCodec::Pcmu, &mut packets[2]));
        let mut alaw: Vec<u8> = stream(0, 20, low, high, 20)[0]
            .iter()
            .map(|&b| Law::A.encode(Law::Mu.table()[usize::from(b)]))
            .collect();
        assert!(s.scrub(AudioCodec::Pcma, &mut alaw));
        assert!(alaw.iter().all(|&b| b == 0xD5));
        let mut l16: Vec<u8> = stream(0, 20, low, high, 20)[0]
            .iter()
            .flat_map(|&b| Law::Mu.table()[usize::from(b)].to_be_bytes())
            .collect();
        assert!(s.scrub(AudioCodec::L16, &mut l16));
        assert!(l16.iter().all(|&b| b == 0));
    }
}
