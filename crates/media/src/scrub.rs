//! Tone scrubbing: key tones taken out of audio that is relayed while a payment is collected.
//!
//! In relay mode the gateway forwards the caller's audio to the other party (an agent, a
//! recorder, a speech pipeline). While a card is keyed, the caller's DTMF tones are card data:
//! forwarded as they are, anyone with the audio could decode the number, at any level: a
//! recording can be amplified before it is decoded. [`ToneScrubber`] looks at each packet as it
//! is forwarded (no added delay) and replaces the samples that might hold a key's tone pair
//! ([`Replacement`]: silence by default); every other sample goes out bit-exact.
//!
//! **The rule is shape, not level** ([`ScrubRule`], docs/masking.md for the measurements).
//! Windows of 80 samples (10 ms), every 40 samples, aligned to the packet's end and reaching
//! back 40 samples into the previous packet in media time (kept from the last call), so every
//! sample of a packet of any length is in two windows and an onset in a packet's last samples
//! is seen. In each window the strongest low-group bin and the strongest high-group bin must
//! be within 14 dB of each other (twist) and hold together a share of the window's energy (dial
//! tone set aside, up to twice the pair, as the detector does):
//!
//! - **weak** at 0.35 (a tone's ragged edge: a window a third filled with tone);
//! - **strong** at 0.8, each of the two standing 3 dB above the other bins of its group, each
//!   tone within 4 % of its DTMF frequency (the phase turn between the window's halves) and
//!   steady (the halves within 6 dB).
//!
//! A tone under speech rarely makes a 10 ms window strong, yet a detector integrating over
//! 40 ms (multimon-ng: a 0.4 share, each tone 10 dB above its group) decodes it. So the
//! windows' halves, 5 ms segments on a grid that runs on across packets in media time, are also
//! summed coherently into a **medium** window (20 ms, share 0.5, each tone 8 dB above its
//! group) and a **long** one (40 ms, share 0.33, 10 dB) ending at each window's end, both with
//! the tones within 2 % of their frequencies. When one holds a pair, the windows of the packet
//! inside it that hold the same pair (at least weak) count as strong.
//!
//! A run of overlapping windows that are at least weak and hold the same pair is replaced when
//! it holds a strong window, continues a replaced run of the packet before in media time (a
//! tone's tail), or ends the packet with a rise of 20 dB over the 40 samples before its last
//! window (a tone's onset out of silence, which the next packet would see too late). The only
//! absolute test is a floor far below anything a detector decodes after amplification
//! ([`ScrubRule::floor_dbm0`], -80 dBm0 per tone: under one step of G.711). Detectors need 0.85
//! purity (tonegate) over 40 ms; speech rarely holds these shapes (51 ms a minute of the Debian
//! prompts replaced, 73 ms in the Spanish voice: docs/masking.md).
//!
//! **Hang-over follows media time.** [`ToneScrubber::scrub_at`] takes the packet's RTP
//! timestamp. A packet whose last window was toned marks its end; the packet that starts there
//! (whenever it arrives) has its first 40 samples replaced too, and a packet that arrives late
//! and ends where a toned packet began has its last 40 replaced. In order, the window reaching
//! back into the previous packet already covers a tone's tail.
//!
//! What can still get through: the first samples of a tone whose onset lies in the last
//! `min_share * 80` samples of a packet (at most 3.5 ms over silence), since those samples left
//! before the tone could be told from what preceded it; and under loud speech, up to one packet
//! (20 ms) of a tone the medium window needs to see whole. A detector decodes neither: a 40 ms
//! detector sees the fragment diluted by the replaced samples after it (multimon-ng would need
//! 16 ms of clean tone, or 27 ms at a 0.6 share). Sans-IO.

use crate::audio::AudioCodec;
use crate::g711::{Law, FULL_SCALE_SINE_DBM0};
use std::f32::consts::PI;

use crate::goertzel::{
    Bank, BlockSpectrum, Complex, Kernel, BLOCK, FREQUENCIES, HALF, SAMPLE_RATE,
};
use crate::inband::{bank, energy_of};

/// Samples replaced at the start (end) of the packet after (before) one that was toned at its
/// end (start), in media time.
const HANGOVER: usize = HALF;
/// The neutral tone of [`Replacement::Tone`]: 1000 Hz, exactly 8 samples a period at 8 kHz.
pub const NEUTRAL_TONE_HZ: f32 = 1000.0;
/// Its level, dBm0.
pub const NEUTRAL_TONE_DBM0: f32 = -20.0;
/// How much more power the last half of a packet's last window must hold than the 40 samples
/// before the window for a weak run there to count as a tone's onset (100, 20 dB: a tone out of
/// silence or background noise, not a syllable out of speech).
const ONSET_RISE: f32 = 100.0;
/// Recent packets remembered for hang-over when packets arrive out of order.
const RECENT: usize = 8;
/// Segments of [`HALF`] samples in a long window (40 ms); a medium window is half as many.
const LONG_SEGMENTS: usize = 8;

/// One [`HALF`]-sample segment of the window grid: its eight bins (referred to its first
/// sample) and its energy.
#[derive(Clone, Copy, Debug, Default)]
struct Segment {
    bins: [Complex; 8],
    energy: f32,
}

/// What the samples of a tone are replaced with.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Replacement {
    /// The codec's zero (0xFF for PCMU, 0xD5 for PCMA, zeros for L16).
    #[default]
    Silence,
    /// White noise at the stream's background level: the quietest untoned window of the
    /// packet, or of the last packet that had one (silence until one has been seen).
    Noise,
    /// A steady 1000 Hz tone at -20 dBm0, phase-continuous in media time: one frequency,
    /// 59 Hz above the low group and 209 Hz below the high group, so never a key pair.
    Tone,
}

/// The per-window test (module documentation). The defaults are one set, measured together in
/// docs/masking.md; change them only with `scripts/masking-report.sh`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ScrubRule {
    /// Share of a window's energy the two strongest bins (one per group) must hold together
    /// for a *weak* window (default 0.35).
    pub min_share: f32,
    /// Largest level difference between the two tones, either way, dB (default 14).
    pub max_twist_db: f32,
    /// How far every other bin of a group must be below its strongest in a strong window, dB
    /// (default 3).
    pub relative_peak_db: f32,
    /// Absolute floor per tone, dBm0 (default -80).
    pub floor_dbm0: f32,
    /// Share a *strong* window's two tones must hold (default 0.8).
    pub strong_share: f32,
    /// Largest frequency error of either tone in a strong window, from the phase turn between
    /// its halves, as a fraction (default 0.04).
    pub max_offset: f32,
    /// Share the two tones must hold over a *long* window (40 ms: the eight 5 ms segments
    /// ending at a window's end, summed coherently, so its bins are as narrow as those of a
    /// detector integrating over 40 ms) for the windows of the packet inside it holding the
    /// same pair to count as strong (default 0.33).
    pub long_share: f32,
    /// How far every other bin of a group must be below its strongest in a long window, dB
    /// (default 10).
    pub long_peak_db: f32,
    /// Share over a *medium* window (20 ms, the last four segments): it sees a tone under
    /// speech sooner than the long one (default 0.5).
    pub medium_share: f32,
    /// [`ScrubRule::long_peak_db`] for the medium window (default 8).
    pub medium_peak_db: f32,
    /// Largest frequency error of either tone in a medium or long window, from the phase turn
    /// between its halves, as a fraction (default 0.02).
    pub long_offset: f32,
}

impl Default for ScrubRule {
    fn default() -> Self {
        ScrubRule {
            min_share: 0.35,
            max_twist_db: 14.0,
            relative_peak_db: 3.0,
            floor_dbm0: -80.0,
            strong_share: 0.8,
            max_offset: 0.04,
            long_share: 0.33,
            long_peak_db: 10.0,
            medium_share: 0.5,
            medium_peak_db: 8.0,
            long_offset: 0.02,
        }
    }
}

#[derive(Clone, Copy, Debug, Default)]
struct Recent {
    start: u32,
    end: u32,
    toned_at_start: bool,
    toned_at_end: bool,
}

/// Removes key tones from relayed audio, packet by packet. One per forwarded stream.
#[derive(Clone, Debug)]
pub struct ToneScrubber {
    rule: ScrubRule,
    replacement: Replacement,
    /// The Goertzel kernel its filters run (the detector's, [`crate::inband::InbandConfig::kernel`]).
    kernel: Kernel,
    scrubbed: u64,
    replaced_samples: u64,
    /// The last [`HALF`] samples of the latest packet in media time, and where it ended.
    history: [i16; HALF],
    history_len: usize,
    next: Option<u32>,
    recent: [Recent; RECENT],
    recent_len: usize,
    recent_at: usize,
    /// The segments before the kept history's, latest last, for long windows (up to
    /// [`LONG_SEGMENTS`] - 1; empty after a gap or on a packet off the grid).
    segments: [Segment; LONG_SEGMENTS - 1],
    segments_len: usize,
    /// Background energy per sample, for [`Replacement::Noise`].
    background: f32,
    noise_state: u32,
}

impl Default for ToneScrubber {
    fn default() -> Self {
        ToneScrubber::with_kernel(Kernel::detect())
    }
}

impl ToneScrubber {
    /// A scrubber for one stream, on the fastest kernel this CPU runs.
    pub fn new() -> ToneScrubber {
        ToneScrubber::default()
    }

    /// A scrubber for one stream whose filters run `kernel`.
    pub fn with_kernel(kernel: Kernel) -> ToneScrubber {
        ToneScrubber {
            rule: ScrubRule::default(),
            replacement: Replacement::default(),
            kernel: kernel.or_portable(),
            scrubbed: 0,
            replaced_samples: 0,
            history: [0; HALF],
            history_len: 0,
            next: None,
            recent: [Recent::default(); RECENT],
            recent_len: 0,
            recent_at: 0,
            segments: [Segment::default(); LONG_SEGMENTS - 1],
            segments_len: 0,
            background: 0.0,
            noise_state: 0x2545_f491,
        }
    }

    /// The same scrubber replacing tones with `replacement`.
    pub fn with_replacement(mut self, replacement: Replacement) -> ToneScrubber {
        self.replacement = replacement;
        self
    }

    /// The same scrubber deciding by `rule`.
    pub fn with_rule(mut self, rule: ScrubRule) -> ToneScrubber {
        self.rule = rule;
        self
    }

    /// Packets scrubbed (at least one sample replaced) so far.
    pub fn scrubbed(&self) -> u64 {
        self.scrubbed
    }

    /// Samples replaced so far.
    pub fn replaced_samples(&self) -> u64 {
        self.replaced_samples
    }

    /// Scrubs one packet's `payload` in place, taking it to follow the previous packet in media
    /// time (for RTP, [`ToneScrubber::scrub_at`] with the packet's timestamp is better: hang-over
    /// then follows media time whatever order packets arrive in). Returns whether a sample was
    /// replaced.
    pub fn scrub(&mut self, codec: AudioCodec, payload: &mut [u8]) -> bool {
        let at = self.next.unwrap_or(0);
        self.scrub_at(codec, at, payload)
    }

    /// Scrubs one packet's `payload` in place; `timestamp` is its RTP timestamp (8 kHz, the
    /// media time of its first sample). Returns whether a sample was replaced.
    pub fn scrub_at(&mut self, codec: AudioCodec, timestamp: u32, payload: &mut [u8]) -> bool {
        let table = match codec {
            AudioCodec::Pcmu => Some(Law::Mu.table()),
            AudioCodec::Pcma => Some(Law::A.table()),
            AudioCodec::L16 => None,
        };
        let packet: Vec<i16> = match table {
            Some(t) => payload.iter().map(|&b| t[usize::from(b)]).collect(),
            None => payload
                .chunks_exact(2)
                .map(|b| i16::from_be_bytes([b[0], b[1]]))
                .collect(),
        };
        let n = packet.len();
        if n == 0 {
            return false;
        }
        let end = timestamp.wrapping_add(n as u32);
        let in_order = self
            .next
            .is_none_or(|next| timestamp.wrapping_sub(next) as i32 >= 0);
        let h = if self.next == Some(timestamp) {
            self.history_len
        } else {
            0
        };
        // The buffer is the kept history (h samples) then the packet, padded with zeros in
        // front to one block; windows are aligned to its end, every HALF samples back, plus one
        // at its start when that leaves a gap.
        let pad = BLOCK.saturating_sub(h + n);
        let mut buffer = vec![0i16; pad];
        buffer.extend_from_slice(&self.history[self.history_len - h..self.history_len]);
        buffer.extend_from_slice(&packet);
        let head = pad + h;
        let total = buffer.len();
        let last = total - BLOCK;
        let first = last % HALF;
        let starts: Vec<usize> = (first != 0)
            .then_some(0)
            .into_iter()
            .chain((first..=last).step_by(HALF))
            .filter(|&s| s + BLOCK > head)
            .collect();
        let bank = bank(self.kernel);
        let floor = energy_of(self.rule.floor_dbm0);
        let mut quietest = f32::INFINITY;
        // On the grid (no padding, whole segments), the windows' halves are the segments of
        // the buffer: with the ones kept from before, they make the long windows.
        let on_grid = pad == 0 && first == 0;
        let prior = if on_grid && h == HALF {
            self.segments_len
        } else {
            0
        };
        let mut segments: Vec<Segment> = self.segments[..prior].to_vec();
        let mut classes: Vec<Class> = Vec::with_capacity(starts.len());
        let mut pairs: Vec<(usize, usize)> = Vec::with_capacity(starts.len());
        for &s in &starts {
            let block: [f32; BLOCK] = std::array::from_fn(|j| f32::from(buffer[s + j]));
            let energy = Bank::energy(&block);
            // No bin can hold more than BLOCK times the block's energy: quiet blocks stop here.
            let spectrum =
                (BLOCK as f32 * energy >= floor).then(|| bank.analyse_with_energy(&block, energy));
            let (class, pair) = match &spectrum {
                Some(spectrum) => self.classify(bank, &block, spectrum),
                None => (Class::None, (0, 0)),
            };
            pairs.push(pair);
            if class == Class::None && s >= head {
                quietest = quietest.min(energy / BLOCK as f32);
            }
            classes.push(class);
            if on_grid {
                let half_energy =
                    |from: usize| block[from..from + HALF].iter().map(|x| x * x).sum::<f32>();
                let segment = |h: usize| Segment {
                    bins: spectrum.map_or([Complex::default(); 8], |sp| sp.halves[h]),
                    energy: half_energy(h * HALF),
                };
                segments.push(segment(0));
                if s == last {
                    segments.push(segment(1));
                }
            }
        }
        // Long windows, the segments ending where each window ends: one that holds a key's
        // shape makes strong the windows of the packet inside it that hold the same pair.
        if on_grid {
            for (i, &s) in starts.iter().enumerate() {
                let end = prior + s / HALF + 2;
                let Some((pair, length)) = self.long_pair(bank, &segments[..end]) else {
                    continue;
                };
                let from = (s + BLOCK).saturating_sub(length * HALF);
                for (j, &t) in starts.iter().enumerate().take(i + 1) {
                    if t >= from && classes[j] != Class::None && pairs[j] == pair {
                        classes[j] = Class::Strong;
                    }
                }
            }
        }
        let previous = self.recent().find(|r| r.end == timestamp).copied();
        let later = self.recent().find(|r| r.start == end).copied();
        // Runs of overlapping windows that are at least weak; one is marked when it holds a
        // strong window or continues a marked run of the packet before in media time.
        let mut marks = vec![false; n];
        let mark = |marks: &mut [bool], from: usize, to: usize| {
            for m in &mut marks[from.max(head) - head..to.min(total) - head] {
                *m = true;
            }
        };
        let mut i = 0;
        while i < classes.len() {
            if classes[i] == Class::None {
                i += 1;
                continue;
            }
            let mut j = i;
            while j + 1 < classes.len() && classes[j + 1] != Class::None && pairs[j + 1] == pairs[i]
            {
                j += 1;
            }
            let continues = i == 0 && starts[0] < head && previous.is_some_and(|r| r.toned_at_end);
            // A weak run at the packet's end that rises abruptly: a tone's onset, which the
            // next packet would judge too late.
            let onset = j + 1 == classes.len() && {
                let s = starts[j];
                let power = |a: usize, b: usize| {
                    buffer[a..b]
                        .iter()
                        .map(|&x| f32::from(x).powi(2))
                        .sum::<f32>()
                };
                // Against the 40 samples before the window (its first half at a stream's start).
                let before = s.checked_sub(HALF).unwrap_or(s);
                power(s + HALF, s + BLOCK) >= ONSET_RISE * power(before, before + HALF)
            };
            if continues || onset || classes[i..=j].contains(&Class::Strong) {
                mark(&mut marks, starts[i], starts[j] + BLOCK);
            }
            i = j + 1;
        }
        if previous.is_some_and(|r| r.toned_at_end) {
            mark(&mut marks, head, head + HANGOVER);
        }
        let toned_at_start = marks[0];
        if later.is_some_and(|r| r.toned_at_start) {
            mark(&mut marks, total - HANGOVER.min(n), total);
        }
        let toned_at_end = marks[n - 1];
        if quietest.is_finite() {
            self.background = quietest;
        }
        if in_order {
            let keep = (h + n).min(HALF);
            self.history[..keep].copy_from_slice(&buffer[total - keep..]);
            self.history_len = keep;
            self.next = Some(end);
            // The segments before the one the next packet finds in its history.
            let before = &segments[..segments.len().saturating_sub(1)];
            let kept = if on_grid {
                before.len().min(LONG_SEGMENTS - 1)
            } else {
                0
            };
            self.segments[..kept].copy_from_slice(&before[before.len() - kept..]);
            self.segments_len = kept;
        }
        self.remember(Recent {
            start: timestamp,
            end,
            toned_at_start,
            toned_at_end,
        });
        let mut replaced = 0;
        for (k, _) in marks.iter().enumerate().filter(|m| *m.1) {
            let x = self.replacement_sample(timestamp.wrapping_add(k as u32));
            match codec {
                AudioCodec::Pcmu => payload[k] = Law::Mu.encode(x),
                AudioCodec::Pcma => payload[k] = Law::A.encode(x),
                AudioCodec::L16 => payload[2 * k..2 * k + 2].copy_from_slice(&x.to_be_bytes()),
            }
            replaced += 1;
        }
        self.replaced_samples += replaced;
        if replaced > 0 {
            self.scrubbed += 1;
        }
        replaced > 0
    }

    fn recent(&self) -> impl Iterator<Item = &Recent> {
        self.recent[..self.recent_len].iter()
    }

    fn remember(&mut self, r: Recent) {
        self.recent[self.recent_at] = r;
        self.recent_at = (self.recent_at + 1) % RECENT;
        self.recent_len = (self.recent_len + 1).min(RECENT);
    }

    /// The pair a long window ending with the last of `segments` holds, or failing that a
    /// medium one, and that window's length in segments.
    fn long_pair(&self, bank: &Bank, segments: &[Segment]) -> Option<((usize, usize), usize)> {
        let rule = &self.rule;
        let medium = LONG_SEGMENTS / 2;
        let test = |length: usize, share: f32, peak_db: f32| {
            let from = segments.len().checked_sub(length)?;
            self.long_window(bank, &segments[from..], share, peak_db)
                .map(|pair| (pair, length))
        };
        test(LONG_SEGMENTS, rule.long_share, rule.long_peak_db)
            .or_else(|| test(medium, rule.medium_share, rule.medium_peak_db))
    }

    /// The long-window test of [`ScrubRule`] over consecutive `segments`.
    fn long_window(
        &self,
        bank: &Bank,
        segments: &[Segment],
        min_share: f32,
        peak_db: f32,
    ) -> Option<(usize, usize)> {
        let rule = &self.rule;
        let len = (segments.len() * HALF) as f32;
        let energy: f32 = segments.iter().map(|s| s.energy).sum();
        let floor = energy_of(rule.floor_dbm0) * (len / BLOCK as f32).powi(2);
        // No bin can hold more than `len` times the window's energy: quiet windows stop here.
        if energy <= 0.0 || len * energy < floor {
            return None;
        }
        // Each half of the window (two segments), and the whole, per bin.
        let mid = segments.len() / 2;
        let sum = |segs: &[Segment], k: usize| {
            let mut x = Complex::default();
            let mut turn = Complex::new(1.0, 0.0);
            for seg in segs {
                x = x + turn * seg.bins[k];
                turn = turn * bank.shift(k);
            }
            x
        };
        let halves: [[Complex; 8]; 2] = [
            std::array::from_fn(|k| sum(&segments[..mid], k)),
            std::array::from_fn(|k| sum(&segments[mid..], k)),
        ];
        let span = (mid * HALF) as f32;
        let bins: [f32; 8] = std::array::from_fn(|k| {
            let shift = Complex::from_angle(-2.0 * PI * FREQUENCIES[k] * span / SAMPLE_RATE);
            (halves[0][k] + shift * halves[1][k]).norm_sqr()
        });
        let (l, h) = (strongest(&bins, 0), strongest(&bins, 4));
        let twist = 10f32.powf(rule.max_twist_db / 10.0);
        let share = 2.0 / len * (bins[l] + bins[h]) / energy;
        if bins[l] < floor
            || bins[h] < floor
            || bins[h] > bins[l] * twist
            || bins[l] > bins[h] * twist
            || share < min_share
        {
            return None;
        }
        let on_frequency = |k: usize| {
            offset_hz(k, halves[0][k], halves[1][k], span).abs()
                <= rule.long_offset * FREQUENCIES[k]
        };
        (stands_out(&bins, l, peak_db)
            && stands_out(&bins, h, peak_db)
            && on_frequency(l)
            && on_frequency(h))
        .then_some((l, h))
    }

    /// The window tests of [`ScrubRule`].
    fn classify(
        &self,
        bank: &Bank,
        block: &[f32; BLOCK],
        spectrum: &BlockSpectrum,
    ) -> (Class, (usize, usize)) {
        let rule = &self.rule;
        let floor = energy_of(rule.floor_dbm0);
        let energy = spectrum.energy;
        let bins: [f32; 8] = std::array::from_fn(|k| {
            bank.window(k, spectrum.halves[0][k], spectrum.halves[1][k])
                .norm_sqr()
        });
        let (l, h) = (strongest(&bins, 0), strongest(&bins, 4));
        let (low, high) = (bins[l], bins[h]);
        let twist = 10f32.powf(rule.max_twist_db / 10.0);
        // Dial tone under the keys is set aside (up to twice the pair), as the detector does.
        let pair = 2.0 / BLOCK as f32 * (low + high);
        let energy = energy - (2.0 / BLOCK as f32 * dial_tone(block)).min(2.0 * pair);
        let share = pair / energy.max(f32::MIN_POSITIVE);
        if low < floor
            || high < floor
            || high > low * twist
            || low > high * twist
            || share < rule.min_share
        {
            return (Class::None, (l, h));
        }
        // Each tone's frequency from the phase turn between the window's halves, and steady.
        let on_frequency = |k: usize| {
            let (a, b) = (spectrum.halves[0][k], spectrum.halves[1][k]);
            let steady = a.norm_sqr() <= 4.0 * b.norm_sqr() && b.norm_sqr() <= 4.0 * a.norm_sqr();
            steady && offset_hz(k, a, b, HALF as f32).abs() <= rule.max_offset * FREQUENCIES[k]
        };
        if share >= rule.strong_share
            && stands_out(&bins, l, rule.relative_peak_db)
            && stands_out(&bins, h, rule.relative_peak_db)
            && on_frequency(l)
            && on_frequency(h)
        {
            (Class::Strong, (l, h))
        } else {
            (Class::Weak, (l, h))
        }
    }

    /// The replacement for the sample at media time `at`.
    fn replacement_sample(&mut self, at: u32) -> i16 {
        match self.replacement {
            Replacement::Silence => 0,
            Replacement::Tone => {
                let amplitude =
                    32767.0 * 10f32.powf((NEUTRAL_TONE_DBM0 - FULL_SCALE_SINE_DBM0) / 20.0);
                let w = 2.0 * PI * NEUTRAL_TONE_HZ / SAMPLE_RATE;
                (amplitude * (w * (at % 8) as f32).sin()).round() as i16
            }
            Replacement::Noise => {
                let noise = (3.0 * self.background.min(energy_per_sample(-40.0))).sqrt();
                self.noise_state = self
                    .noise_state
                    .wrapping_mul(1_664_525)
                    .wrapping_add(1_013_904_223);
                let u = (self.noise_state >> 8) as f32 / (1u32 << 24) as f32;
                (noise * (2.0 * u - 1.0)).round() as i16
            }
        }
    }
}

/// The strongest of the four bins from `from` (a group: 0 low, 4 high).
fn strongest(bins: &[f32; 8], from: usize) -> usize {
    (from..from + 4)
        .max_by(|&a, &b| bins[a].total_cmp(&bins[b]))
        .expect("four bins")
}

/// Whether bin `peak` stands `db` above every other bin of its group.
fn stands_out(bins: &[f32; 8], peak: usize, db: f32) -> bool {
    let ratio = 10f32.powf(db / 10.0);
    let from = peak / 4 * 4;
    (from..from + 4).all(|k| k == peak || bins[k] * ratio <= bins[peak])
}

/// How far (Hz) the tone in bin `k` is from its DTMF frequency, from the phase turn between
/// its values `a` and `b` over two consecutive spans of `span` samples.
fn offset_hz(k: usize, a: Complex, b: Complex, span: f32) -> f32 {
    let turn = b.mul_conj(a).arg() - 2.0 * PI * FREQUENCIES[k] * span / SAMPLE_RATE;
    let turn = (turn + PI).rem_euclid(2.0 * PI) - PI;
    turn * SAMPLE_RATE / (2.0 * PI * span)
}

/// Window energy (|X|², 80 samples) of dial tone in `block`: 350 + 440 Hz within 6 dB of each
/// other, or a lone 425 Hz (9 dB above 350 Hz); otherwise none (the detector's rule).
fn dial_tone(block: &[f32; BLOCK]) -> f32 {
    let e = [350.0f32, 425.0, 440.0].map(|f| {
        let coef = 2.0 * (2.0 * PI * f / SAMPLE_RATE).cos();
        let (mut s1, mut s2) = (0.0f32, 0.0f32);
        for &x in block {
            let t = x + coef * s1 - s2;
            s2 = s1;
            s1 = t;
        }
        s1 * s1 + s2 * s2 - coef * s1 * s2
    });
    let (e350, e425, e440) = (e[0], e[1], e[2]);
    if e350 <= 4.0 * e440 && e440 <= 4.0 * e350 {
        e350 + e440
    } else if e425 >= 8.0 * e350 {
        e425
    } else {
        0.0
    }
}

/// What one window holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Class {
    None,
    /// Two tones' shape, loosely: a tone's ragged edge, or speech.
    Weak,
    /// A steady tone pair on DTMF frequencies.
    Strong,
}

/// Mean energy per sample of a sine at `level` dBm0.
fn energy_per_sample(level: f32) -> f32 {
    let amplitude = 32767.0 * 10f32.powf((level - FULL_SCALE_SINE_DBM0) / 20.0);
    amplitude * amplitude / 2.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inband::{InbandDetector, InbandEvent};
    use crate::time::{ClockRate, MediaTime};
    use std::f32::consts::PI;

    const KEYS: [(char, f32, f32); 4] = [
        ('1', 697.0, 1209.0),
        ('5', 770.0, 1336.0),
        ('9', 852.0, 1477.0),
        ('D', 941.0, 1633.0),
    ];

    fn amplitude(dbm0: f32) -> f32 {
        32767.0 * 10f32.powf((dbm0 - crate::g711::FULL_SCALE_SINE_DBM0) / 20.0)
    }

    /// `ms` of silence, a key's tones at `dbm0` for `tone_ms` from sample `at`, mu-law.
    fn audio(at: usize, tone_ms: usize, low: f32, high: f32, ms: usize, dbm0: f32) -> Vec<u8> {
        let end = at + tone_ms * 8;
        (0..ms * 8)
            .map(|i| {
                let t = i as f32 / 8000.0;
                let x = if (at..end).contains(&i) {
                    amplitude(dbm0)
                        * ((2.0 * PI * low * t).sin() + (2.0 * PI * high * t + 1.0).sin())
                } else {
                    0.0
                };
                Law::Mu.encode(x as i16)
            })
            .collect()
    }

    fn stream(at: usize, tone_ms: usize, low: f32, high: f32, ms: usize) -> Vec<Vec<u8>> {
        audio(at, tone_ms, low, high, ms, -10.0)
            .chunks(160)
            .map(<[u8]>::to_vec)
            .collect()
    }

    /// Presses tonegate's detector finds in mu-law `bytes`, amplified by `gain` first.
    fn presses(bytes: &[u8], gain: f32) -> usize {
        let mut d = InbandDetector::default();
        let samples: Vec<i16> = bytes
            .iter()
            .map(|&b| {
                (f32::from(Law::Mu.table()[usize::from(b)]) * gain).clamp(-32767.0, 32767.0) as i16
            })
            .collect();
        d.handle_samples(MediaTime::new(0, ClockRate::NARROWBAND), &samples)
            .unwrap();
        d.finish();
        let mut count = 0;
        while let Some(e) = d.poll_event() {
            count += usize::from(matches!(e, InbandEvent::Press(_)));
        }
        count
    }

    #[test]
    fn key_tones_at_every_alignment_and_level_leave_nothing_a_detector_hears() {
        for dbm0 in [-10.0, -40.0, -60.0] {
            let gain = 10f32.powf((-10.0 - dbm0) / 20.0);
            for (key, low, high) in KEYS {
                for at in (800..960).step_by(7) {
                    let input = audio(at, 60, low, high, 300, dbm0);
                    assert_eq!(presses(&input, gain), 1, "{key} unscrubbed is heard");
                    let mut s = ToneScrubber::new();
                    let mut output = input.clone();
                    for (i, p) in output.chunks_mut(160).enumerate() {
                        s.scrub_at(AudioCodec::Pcmu, 1000 + i as u32 * 160, p);
                    }
                    assert_eq!(presses(&output, gain), 0, "{key} at {at}, {dbm0} dBm0");
                    let leaked = (at..at + 480)
                        .filter(|&i| output[i] == input[i] && input[i] != 0xFF)
                        .count();
                    assert!(
                        leaked <= 28,
                        "{key} at {at}: {leaked} samples of tone forwarded"
                    );
                    let muted = (0..input.len())
                        .filter(|i| !(at..at + 480).contains(i) && output[*i] != input[*i])
                        .count();
                    assert_eq!(muted, 0, "silence around the tone is silence already");
                }
            }
        }
    }

    /// A key's tones at -20 dBm0 each under white noise holding 40 % of the power (speech-like
    /// interference: no 10 ms window reaches the strong share), at eight onsets in a packet:
    /// the tone samples forwarded unchanged under `rule`, the most of any onset.
    fn leaked_under_noise(rule: ScrubRule) -> usize {
        let a = amplitude(-20.0);
        // Pair power a² against noise power 2a²/3 (uniform noise: variance w²/3).
        let w = (2.0f32).sqrt() * a;
        let mut state = 7u32;
        let mut worst = 0;
        for at in (1600..1760).step_by(20) {
            let end = at + 560;
            let input: Vec<u8> = (0..3200)
                .map(|i| {
                    state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                    let u = (state >> 8) as f32 / (1u32 << 24) as f32;
                    let t = i as f32 / 8000.0;
                    let tone = if (at..end).contains(&i) {
                        a * ((2.0 * PI * 852.0 * t).sin() + (2.0 * PI * 1477.0 * t + 1.0).sin())
                    } else {
                        0.0
                    };
                    Law::Mu.encode((tone + w * (2.0 * u - 1.0)) as i16)
                })
                .collect();
            let mut s = ToneScrubber::new().with_rule(rule);
            let mut output = input.clone();
            for (i, p) in output.chunks_mut(160).enumerate() {
                s.scrub_at(AudioCodec::Pcmu, i as u32 * 160, p);
            }
            worst = worst.max((at..end).filter(|&i| output[i] == input[i]).count());
        }
        worst
    }

    #[test]
    fn a_key_under_speech_like_noise_is_caught_within_a_packet() {
        let leaked = leaked_under_noise(ScrubRule::default());
        assert!(leaked <= 160, "{leaked} samples of tone forwarded");
        // The 10 ms windows alone let it all through: the medium and long windows catch it.
        let short_only = ScrubRule {
            medium_share: 2.0,
            long_share: 2.0,
            ..ScrubRule::default()
        };
        assert!(leaked_under_noise(short_only) > 400);
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
        for (_, low, _) in KEYS {
            // A lone tone (the same frequency twice): nothing in the other group.
            let mut one = stream(0, 20, low, low, 20).remove(0);
            assert!(!s.scrub(AudioCodec::Pcmu, &mut one), "{low} Hz alone");
        }
        assert_eq!(s.scrubbed(), 0);
    }

    #[test]
    fn a_tone_is_the_codecs_silence_and_its_tail_in_the_next_packet_too() {
        let mut packets = stream(0, 20, 770.0, 1336.0, 60);
        let mut s = ToneScrubber::new();
        assert!(s.scrub(AudioCodec::Pcmu, &mut packets[0]));
        assert!(packets[0].iter().all(|&b| b == 0xFF));
        assert!(s.scrub(AudioCodec::Pcmu, &mut packets[1]), "hangover");
        assert!(!s.scrub(AudioCodec::Pcmu, &mut packets[2]));
        let mut alaw: Vec<u8> = stream(0, 20, 770.0, 1336.0, 20)[0]
            .iter()
            .map(|&b| Law::A.encode(Law::Mu.table()[usize::from(b)]))
            .collect();
        let mut s = ToneScrubber::new();
        assert!(s.scrub(AudioCodec::Pcma, &mut alaw));
        assert!(alaw.iter().all(|&b| b == 0xD5));
        let mut l16: Vec<u8> = stream(0, 20, 770.0, 1336.0, 20)[0]
            .iter()
            .flat_map(|&b| Law::Mu.table()[usize::from(b)].to_be_bytes())
            .collect();
        assert!(s.scrub(AudioCodec::L16, &mut l16));
        assert!(l16.iter().all(|&b| b == 0));
    }

    #[test]
    fn hangover_follows_media_time_not_arrival() {
        // The tone ends 5 samples into packet 1: too little for any window, so only the
        // hang-over of packet 0 (toned to its end) can catch it, whenever packet 1 arrives.
        let input = audio(100, 8, 770.0, 1336.0, 60, -20.0);
        let tail = input[160..165].to_vec();
        let mut packets: Vec<Vec<u8>> = input.chunks(160).map(<[u8]>::to_vec).collect();
        let mut s = ToneScrubber::new();
        // Arrival order 2, 0, 1.
        assert!(!s.scrub_at(AudioCodec::Pcmu, 320, &mut packets[2]));
        assert!(s.scrub_at(AudioCodec::Pcmu, 0, &mut packets[0]));
        assert!(s.scrub_at(AudioCodec::Pcmu, 160, &mut packets[1]));
        assert_ne!(tail, packets[1][..5]);
        assert!(packets[1][..HANGOVER].iter().all(|&b| b == 0xFF));
        assert!(
            packets[1][HANGOVER..].iter().all(|&b| b == 0xFF),
            "silence untouched"
        );
        // A tone onset 20 samples before the end of packet 0, which arrives after packet 1.
        let input = audio(140, 40, 770.0, 1336.0, 40, -20.0);
        let mut packets: Vec<Vec<u8>> = input.chunks(160).map(<[u8]>::to_vec).collect();
        let mut s = ToneScrubber::new();
        assert!(s.scrub_at(AudioCodec::Pcmu, 160, &mut packets[1]));
        assert!(s.scrub_at(AudioCodec::Pcmu, 0, &mut packets[0]));
        assert!(packets[0][160 - HANGOVER..].iter().all(|&b| b == 0xFF));
    }

    #[test]
    fn packets_of_any_length_are_covered_to_their_last_sample() {
        for len in [1usize, 40, 80, 100, 160, 240, 1000, 2400] {
            let input = audio(
                len.saturating_sub(40),
                5,
                852.0,
                1477.0,
                len.div_ceil(8),
                -30.0,
            );
            let mut out = input[..len].to_vec();
            let mut s = ToneScrubber::new();
            s.scrub_at(AudioCodec::Pcmu, 0, &mut out);
            if len >= 40 {
                assert!(out[len - 40..].iter().all(|&b| b == 0xFF), "{len}");
            }
        }
    }

    #[test]
    fn replacements_are_noise_at_the_background_and_a_neutral_tone() {
        let input = stream(0, 20, 770.0, 1336.0, 20).remove(0);
        let mut tone = input.clone();
        let mut s = ToneScrubber::new().with_replacement(Replacement::Tone);
        assert!(s.scrub(AudioCodec::Pcmu, &mut tone));
        // The neutral tone is one frequency: never a key, even amplified.
        let long: Vec<u8> = (0..10).flat_map(|_| tone.clone()).collect();
        assert_eq!(presses(&long, 1.0), 0);
        assert!(long.iter().any(|&b| b != 0xFF));
        let mut noise = input.clone();
        let mut s = ToneScrubber::new().with_replacement(Replacement::Noise);
        assert!(s.scrub(AudioCodec::Pcmu, &mut noise));
        // No background seen yet: silence.
        assert!(noise.iter().all(|&b| b == 0xFF));
    }
}
