//! In-band DTMF: the sans-IO key-press detector that listens to the audio itself.
//!
//! Feed [`InbandDetector::handle_samples`] 16-bit linear samples at 8 kHz in blocks of any size
//! with the media time of their first sample; drain [`InbandDetector::poll_event`]. The
//! detector works on 10 ms blocks (80 samples) analysed by [`crate::goertzel::Bank`] and decides
//! per block whether the block is a *hit* for one key:
//!
//! 1. the strongest low-group and high-group bins are each at least [`InbandConfig::min_level`];
//! 2. twist (high minus low) is within `-max_standard_twist` .. `+max_reverse_twist`;
//! 3. every other bin of each group is [`InbandConfig::relative_peak`] below the strongest;
//! 4. the two tones hold [`InbandConfig::min_purity`] of the block's energy;
//! 5. both tones' frequencies, measured from the phase step between overlapping windows, are
//!    within 5 % of nominal (a loose per-block gate against junk).
//!
//! Hits become a key press when the same key has hit in at least three blocks at full level
//! (within 3 dB of the strongest of them: a 40 ms tone always covers three whole blocks, a
//! 23 ms tone never more than two at full level), *and* both tone frequencies averaged over the
//! press are within [`InbandConfig::max_frequency_error`] of nominal with a steady phase step.
//! A press ends after three blocks without a hit of its key (a 40 ms pause always clears
//! three whole blocks, a 10 ms interruption never more than two). Start and end are refined
//! inside their block from the energy of the partial edge blocks.
//!
//! ```
//! use tonegate_media::inband::{InbandDetector, InbandEvent};
//! use tonegate_media::{ClockRate, MediaTime};
//!
//! // Key 5 (770 + 1336 Hz) at -10 dBm0 per tone for 60 ms, then silence.
//! let amplitude = 32767.0 * 10f32.powf((-10.0 - tonegate_media::g711::FULL_SCALE_SINE_DBM0) / 20.0);
//! let mut audio: Vec<i16> = (0..480)
//!     .map(|n| {
//!         let t = n as f32 / 8000.0;
//!         let tone = (2.0 * std::f32::consts::PI * 770.0 * t).sin()
//!             + (2.0 * std::f32::consts::PI * 1336.0 * t).sin();
//!         (amplitude * tone) as i16
//!     })
//!     .collect();
//! audio.resize(1600, 0);
//! let mut detector = InbandDetector::default();
//! let mut keys = String::new();
//! for (i, block) in audio.chunks(160).enumerate() {
//!     let start = MediaTime::new(i as u64 * 160, ClockRate::NARROWBAND);
//!     detector.handle_samples(start, block).unwrap();
//!     while let Some(event) = detector.poll_event() {
//!         if let InbandEvent::Press(p) = event {
//!             keys.push(p.press.key().as_char());
//!         }
//!     }
//! }
//! assert_eq!(keys, "5");
//! ```
//!
//! Per-channel state is [`InbandDetector::STATE_BYTES`] bytes (the filter constants are shared
//! by all channels); a block allocates nothing.

use std::collections::VecDeque;
use std::f32::consts::PI;
use std::fmt;
use std::ops::{Add, Mul};
use std::sync::OnceLock;

use thiserror::Error;
use zeroize::Zeroize;

use crate::g711::FULL_SCALE_SINE_DBM0;
use crate::goertzel::{
    Bank, BlockSpectrum, Complex, Kernel, BLOCK, FREQUENCIES, HALF, SAMPLE_RATE,
};
use crate::key::{Dbm0, Key, KeyPress, Source};
use crate::rfc4733::Ending;
use crate::time::{ClockRate, MediaDuration, MediaTime};

/// A level in dBm0 as measured (fractional), e.g. `-12.4`.
#[derive(Clone, Copy, Debug, PartialEq, PartialOrd, Default)]
pub struct LevelDbm0(pub f32);

/// A ratio of two levels in decibels.
#[derive(Clone, Copy, Debug, PartialEq, PartialOrd, Default)]
pub struct Decibels(pub f32);

/// Detector thresholds. The defaults meet ITU-T Q.24 (AT&T column) with margin; the reasons
/// for each value are in `docs/inband.md`.
#[derive(Clone, Debug)]
pub struct InbandConfig {
    /// Weakest tone accepted, per tone (default -44 dBm0: Q.24 accepts down to -36 and rejects
    /// -55 and below).
    pub min_level: LevelDbm0,
    /// Largest standard twist (high group below low group) accepted (default 10 dB; Q.24: 8).
    pub max_standard_twist: Decibels,
    /// Largest reverse twist (high group above low group) accepted (default 6 dB; Q.24: 4).
    pub max_reverse_twist: Decibels,
    /// How far below the strongest bin of a group every other bin must be (default 4 dB).
    pub relative_peak: Decibels,
    /// Share of the block's energy, dial tone (350, 425, 440 Hz) set aside and each tone's
    /// energy corrected for its measured frequency offset, that the two tones must hold
    /// (default 0.85; white noise 12 dB below each tone leaves them about 0.94; held orchestral
    /// chords that pass every other test hold 0.6-0.9).
    pub min_purity: f32,
    /// Largest frequency error of either tone over a press, as a fraction (default 0.018:
    /// Q.24 accepts ±1.5 % and rejects ±3.5 %; the estimate errs by at most 0.3 % in 12 dB
    /// noise or under dial tone, and music that passes every other test sits 1-2 % off).
    pub max_frequency_error: f32,
    /// How far each tone must have risen over the 10 ms block that ended 20 ms before the
    /// press's first hit (default 8 dB). A key starts both tones at once; a chord's notes were
    /// mostly already sounding (held-out and fresh music: at most 5 dB of rise; key tones in
    /// silence, 12 dB noise or under dial tone: at least 11.7 dB).
    pub min_onset_rise: Decibels,
    /// The Goertzel kernel (default [`Kernel::detect`]: the fastest this CPU runs). Both give
    /// the same presses (docs/inband.md); a kernel this CPU cannot run falls back to
    /// [`Kernel::Portable`].
    pub kernel: Kernel,
}

impl Default for InbandConfig {
    fn default() -> Self {
        InbandConfig {
            min_level: LevelDbm0(-44.0),
            max_standard_twist: Decibels(10.0),
            max_reverse_twist: Decibels(6.0),
            relative_peak: Decibels(4.0),
            min_purity: 0.85,
            max_frequency_error: 0.018,
            min_onset_rise: Decibels(8.0),
            kernel: Kernel::detect(),
        }
    }
}

/// Why samples could not be used.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum InbandError {
    /// The detector works on 8 kHz audio only.
    #[error("in-band DTMF detection needs 8000 Hz audio; this media time is clocked at {hz} Hz")]
    UnsupportedRate {
        /// The clock rate given.
        hz: u32,
    },
}

/// A key press heard in the audio, with what was measured of its tones.
#[derive(Clone, Debug, PartialEq)]
pub struct InbandPress {
    /// The press (source [`Source::Inband`]; its volume is the louder tone's level, rounded).
    pub press: KeyPress,
    /// Level of the low-group tone.
    pub low_level: LevelDbm0,
    /// Level of the high-group tone.
    pub high_level: LevelDbm0,
    /// High-group level minus low-group level (positive: reverse twist).
    pub twist: Decibels,
    /// Measured frequency error of the low and high tone, as fractions of nominal.
    pub frequency_error: [f32; 2],
    /// [`Ending::ToneEnd`] or [`Ending::EndOfInput`].
    pub ending: Ending,
}

/// What the detector reports.
#[derive(Clone, Debug, PartialEq)]
pub enum InbandEvent {
    /// A press was recognised (after three full blocks); its end is not known yet.
    PressStarted {
        /// The key (redacted in `Debug`).
        key: Key,
        /// Start of the tone.
        start: MediaTime,
    },
    /// A press ended.
    Press(InbandPress),
}

/// Keys by (row, column).
const KEYPAD: [[char; 4]; 4] = [
    ['1', '2', '3', 'A'],
    ['4', '5', '6', 'B'],
    ['7', '8', '9', 'C'],
    ['*', '0', '#', 'D'],
];

/// Blocks at full level a press needs.
const MIN_FULL_BLOCKS: usize = 3;
/// Blocks without a hit that end a press.
const END_MISSES: u8 = 3;
/// Remembered hit energies per track (for the full-level count).
const TRACKED: usize = 8;
/// Loose per-block frequency gate.
const BLOCK_FREQUENCY_GATE: f32 = 0.05;
/// Required steadiness of the phase step over a press (|Σp| / Σ|p|).
const MIN_COHERENCE: f32 = 0.7;
/// Largest deviation of one full block's frequency estimate from the press's mean, in Hz.
/// Key tones measured 0-5 Hz (12 dB SNR, dial tone under them); voiced speech and music whose
/// harmonics sit near a DTMF pair glide by 10-70 Hz over the same 30 ms (docs/inband.md).
const MAX_FREQUENCY_WANDER_HZ: f32 = 12.0;
/// Largest spread of the per-block twist over the full blocks (ratio, 4 dB). Key tones
/// measured within 2 dB (3 dB for a -16 dBm0 tone under an 8 dB stronger one); speech and
/// music 3-7 dB.
const MAX_TWIST_SPREAD: f32 = 2.512;

/// Constants shared by all channels.
struct Shared {
    bank: Bank,
    dial: DialTone,
    /// `e^(-jω·HALF)` per bin: removes the nominal phase step of a window product.
    unrotate: [Complex; 8],
    /// Cosine of the phase step of a tone [`BLOCK_FREQUENCY_GATE`] off nominal, per bin.
    gate_cos: [f32; 8],
}

/// The constants of each kernel, built on first use. Which kernel a detector runs is its own
/// configuration ([`InbandConfig::kernel`]), never process state, so results do not depend on
/// which detector ran first.
static SHARED: [OnceLock<Shared>; 2] = [OnceLock::new(), OnceLock::new()];

/// The filter bank of `kernel` (for the relay's tone scrubber).
pub(crate) fn bank(kernel: Kernel) -> &'static Bank {
    &shared(kernel).bank
}

/// The constants of `kernel`, which the caller has checked this CPU runs
/// ([`Kernel::or_portable`], done once per detector or scrubber, not per block).
fn shared(kernel: Kernel) -> &'static Shared {
    let slot = match kernel {
        Kernel::Portable => 0,
        Kernel::Avx2Fma => 1,
    };
    SHARED[slot].get_or_init(|| Shared::new(kernel))
}

impl Shared {
    fn new(kernel: Kernel) -> Shared {
        let bank = Bank::with_kernel(kernel).expect("only kernels this CPU runs are chosen");
        let unrotate = std::array::from_fn(|k| bank.shift(k));
        let gate_cos = FREQUENCIES.map(|f| {
            (BLOCK_FREQUENCY_GATE * f * 2.0 * PI * HALF as f32 / SAMPLE_RATE)
                .min(PI)
                .cos()
        });
        Shared {
            bank,
            unrotate,
            gate_cos,
            dial: DialTone::new(),
        }
    }
}

/// Goertzel filters at the dial-tone frequencies (350 + 440 Hz precise dial tone, 425 Hz ETSI
/// dial tone), run only on blocks that are otherwise DTMF.
struct DialTone {
    coef: [f32; 3],
}

impl DialTone {
    fn new() -> DialTone {
        DialTone {
            coef: [350.0f32, 425.0, 440.0].map(|f| 2.0 * (2.0 * PI * f / SAMPLE_RATE).cos()),
        }
    }

    /// Window energy of dial tone in `block`: 350 + 440 Hz when both are there within 6 dB of
    /// each other (precise dial tone sends them at one level), or 425 Hz when it stands alone
    /// (9 dB above 350 Hz); otherwise none. Music's bass fills these bins too, but rarely as a
    /// matched pair: set aside broadly, it made chords pass as keys (measured on the MOH set).
    fn energy(&self, block: &[f32; BLOCK]) -> f32 {
        let mut s1 = [0.0f32; 3];
        let mut s2 = [0.0f32; 3];
        for &x in block {
            for k in 0..3 {
                let t = (x - s2[k]) + self.coef[k] * s1[k];
                s2[k] = s1[k];
                s1[k] = t;
            }
        }
        let e: [f32; 3] =
            std::array::from_fn(|k| s1[k] * s1[k] + s2[k] * s2[k] - self.coef[k] * s1[k] * s2[k]);
        let (e350, e425, e440) = (e[0], e[1], e[2]);
        if e350 <= 4.0 * e440 && e440 <= 4.0 * e350 {
            e350 + e440
        } else if e425 >= 8.0 * e350 {
            e425
        } else {
            0.0
        }
    }
}

/// Energy (|X|² of an 80-sample window) of a sine at `level` dBm0 exactly on a bin.
pub(crate) fn energy_of(level: f32) -> f32 {
    let amplitude = 32767.0 * 10f32.powf((level - FULL_SCALE_SINE_DBM0) / 20.0);
    let x = amplitude * BLOCK as f32 / 2.0;
    x * x
}

/// Level in dBm0 of a window energy, with the bin's gain `gain` (1 on the bin) undone.
fn level_of(energy: f32, gain: f32) -> f32 {
    let amplitude = 2.0 * energy.sqrt() / (BLOCK as f32 * gain.max(1e-6));
    20.0 * (amplitude.max(1e-3) / 32767.0).log10() + FULL_SCALE_SINE_DBM0
}

/// Gain of an 80-sample window's bin for a tone `offset_hz` away.
fn window_gain(offset_hz: f32) -> f32 {
    let x = PI * offset_hz / SAMPLE_RATE;
    if x.abs() < 1e-6 {
        1.0
    } else {
        ((x * BLOCK as f32).sin() / (BLOCK as f32 * x.sin())).abs()
    }
}

/// Frequency offset in Hz of a product sum (already unrotated).
fn offset_hz(p: Complex) -> f32 {
    p.arg() * SAMPLE_RATE / (2.0 * PI * HALF as f32)
}

/// No `Debug`: its row and column are the key.
#[derive(Clone, Copy)]
struct Hit {
    row: u8,
    col: u8,
    energy: f32,
    low: f32,
    high: f32,
    /// Window products (unrotated) for the low and high bin.
    product: [Complex; 2],
}

/// One key being heard: a candidate until confirmed, then the active press. No `Debug`: its
/// row and column are the key.
#[derive(Clone, Copy)]
struct Track {
    row: u8,
    col: u8,
    first_block: u64,
    first_energy: f32,
    last_block: u64,
    last_energy: f32,
    misses: u8,
    /// Energy at this key's bins in the block before the first hit and after the last one:
    /// the tone's edges when they fell in blocks that did not pass as hits.
    before: f32,
    after: f32,
    recent: [f32; TRACKED],
    /// Per remembered hit: frequency offsets (Hz) of the two tones, and high/low energy.
    offsets: [[f32; 2]; TRACKED],
    twists: [f32; TRACKED],
    hits: u32,
    max_energy: f32,
    max_levels: [f32; 2],
    product: [Complex; 2],
    product_abs: [f32; 2],
    /// Confirmed as a press (the active track).
    confirmed: bool,
    /// Energy at the low and high bin in the block three before the first hit.
    onset: [f32; 2],
}

impl Track {
    fn new(block: u64, hit: &Hit, before: f32, onset: [f32; 2]) -> Track {
        let mut t = Track {
            row: hit.row,
            col: hit.col,
            first_block: block,
            first_energy: hit.energy,
            last_block: block,
            last_energy: hit.energy,
            misses: 0,
            before,
            after: 0.0,
            recent: [0.0; TRACKED],
            offsets: [[0.0; 2]; TRACKED],
            twists: [0.0; TRACKED],
            hits: 0,
            max_energy: 0.0,
            max_levels: [0.0; 2],
            product: [Complex::default(); 2],
            product_abs: [0.0; 2],
            confirmed: false,
            onset,
        };
        t.add(block, hit);
        t
    }

    fn same_key(&self, hit: &Hit) -> bool {
        self.row == hit.row && self.col == hit.col
    }

    fn add(&mut self, block: u64, hit: &Hit) {
        let slot = self.hits as usize % TRACKED;
        self.recent[slot] = hit.energy;
        if !self.confirmed {
            // Only a candidate's steadiness is judged; a confirmed press skips the atan2s.
            self.offsets[slot] = [offset_hz(hit.product[0]), offset_hz(hit.product[1])];
        }
        self.twists[slot] = hit.high / hit.low;
        self.hits += 1;
        self.last_block = block;
        self.last_energy = hit.energy;
        self.misses = 0;
        if hit.energy > self.max_energy {
            self.max_energy = hit.energy;
            self.max_levels = [hit.low, hit.high];
        }
        for g in 0..2 {
            self.product[g] = self.product[g].add(hit.product[g]);
            self.product_abs[g] += hit.product[g].abs();
        }
    }

    /// Indices of the remembered hits at full level (within 3 dB of the strongest).
    fn full(&self) -> impl Iterator<Item = usize> + '_ {
        let n = (self.hits as usize).min(TRACKED);
        let max = self.recent[..n].iter().fold(0.0f32, |m, &e| m.max(e));
        (0..n).filter(move |&i| self.recent[i] >= 0.5 * max)
    }

    /// Hits at full level among the remembered ones.
    fn full_blocks(&self) -> usize {
        self.full().count()
    }

    /// Whether frequency and twist held still over the full blocks, as a key's tones do.
    fn steady(&self) -> bool {
        let n = self.full_blocks() as f32;
        for g in 0..2 {
            let mean = self.full().map(|i| self.offsets[i][g]).sum::<f32>() / n;
            if self
                .full()
                .any(|i| (self.offsets[i][g] - mean).abs() > MAX_FREQUENCY_WANDER_HZ)
            {
                return false;
            }
        }
        let (lo, hi) = self.full().fold((f32::MAX, 0.0f32), |(lo, hi), i| {
            (lo.min(self.twists[i]), hi.max(self.twists[i]))
        });
        hi <= lo * MAX_TWIST_SPREAD
    }

    fn offsets(&self) -> [f32; 2] {
        [offset_hz(self.product[0]), offset_hz(self.product[1])]
    }

    fn frequency_errors(&self) -> [f32; 2] {
        let o = self.offsets();
        [
            o[0] / FREQUENCIES[self.row as usize],
            o[1] / FREQUENCIES[4 + self.col as usize],
        ]
    }

    fn confirmable(&self, config: &InbandConfig, thresholds: &Thresholds) -> bool {
        if self.full_blocks() < MIN_FULL_BLOCKS {
            return false;
        }
        let steady = (0..2).all(|g| self.product[g].abs() >= MIN_COHERENCE * self.product_abs[g]);
        let on_frequency = self
            .frequency_errors()
            .iter()
            .all(|e| e.abs() <= config.max_frequency_error);
        // Both tones rose from well below, as a key's do (see InbandConfig::min_onset_rise).
        let rose = (0..2).all(|g| self.max_levels[g] >= thresholds.onset_rise * self.onset[g]);
        steady && on_frequency && rose && self.steady()
    }

    fn key(&self) -> Key {
        Key::from_char(KEYPAD[self.row as usize][self.col as usize]).expect("keypad holds keys")
    }

    /// How much of a block the tone filled, from the block's energy at the key's bins (the
    /// window sum grows with the number of tone samples in it, so energy with its square).
    fn cover(&self, energy: f32) -> f32 {
        (energy / self.max_energy).sqrt().min(1.0)
    }

    /// Start in ticks: inside the first hit block when it is partly filled, else inside the
    /// block before it.
    fn start(&self) -> u64 {
        let first = self.cover(self.first_energy);
        if first < 0.9 {
            return self.first_block + ((1.0 - first) * BLOCK as f32).round() as u64;
        }
        let before = (self.cover(self.before) * BLOCK as f32).round() as u64;
        self.first_block.saturating_sub(before)
    }

    /// End in ticks, the same way.
    fn end(&self) -> u64 {
        let last = self.cover(self.last_energy);
        if last < 0.9 {
            return self.last_block + (last * BLOCK as f32).round() as u64;
        }
        self.last_block + BLOCK as u64 + (self.cover(self.after) * BLOCK as f32).round() as u64
    }

    fn miss(&mut self, energies: &[f32; 8]) {
        if self.misses == 0 {
            self.after = energies[self.row as usize] + energies[4 + self.col as usize];
        }
        self.misses += 1;
    }
}

/// The sans-IO in-band DTMF detector for one audio channel.
///
/// Its `Debug` shows settings and counters, never a row, a column, a bin energy or a sample
/// (each would tell the key being heard). When a tracked key is let go, and when the detector
/// is dropped, its row and column, the sample buffer and the per-bin energies are overwritten.
#[derive(Clone)]
pub struct InbandDetector {
    config: InbandConfig,
    thresholds: Thresholds,
    buf: [i16; BLOCK],
    fill: usize,
    /// Ticks of `buf[0]`.
    block_start: u64,
    /// Ticks of the next sample expected.
    next: Option<u64>,
    /// Second half of the previous block, per bin.
    prev_half: [Complex; 8],
    /// Full window of the previous block, per bin.
    prev_window: [Complex; 8],
    /// Energies of the last block, per bin (for plots and edges).
    last_energies: [f32; 8],
    /// Energies of the block before it.
    prev_energies: [f32; 8],
    /// Energies of the two blocks before that (newest first): the onset reference.
    earlier_energies: [[f32; 8]; 2],
    blocks: u64,
    candidate: Option<Track>,
    active: Option<Track>,
    events: VecDeque<InbandEvent>,
}

impl fmt::Debug for InbandDetector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InbandDetector")
            .field("config", &self.config)
            .field("blocks", &self.blocks)
            .field("next", &self.next)
            .field("pending_events", &self.events.len())
            .finish_non_exhaustive()
    }
}

impl Drop for InbandDetector {
    fn drop(&mut self) {
        forget(&mut self.candidate);
        forget(&mut self.active);
        self.buf.zeroize();
        self.last_energies.zeroize();
        self.prev_energies.zeroize();
        for energies in &mut self.earlier_energies {
            energies.zeroize();
        }
    }
}

/// Lets a tracked key go: its row and column are overwritten before the slot is emptied.
fn forget(track: &mut Option<Track>) {
    if let Some(t) = track.as_mut() {
        t.row.zeroize();
        t.col.zeroize();
    }
    *track = None;
}

#[derive(Clone, Debug)]
struct Thresholds {
    min_energy: f32,
    onset_rise: f32,
    standard_twist: f32,
    reverse_twist: f32,
    relative_peak: f32,
}

impl Default for InbandDetector {
    fn default() -> Self {
        InbandDetector::new(InbandConfig::default())
    }
}

impl InbandDetector {
    /// Bytes of per-channel state: `size_of::<InbandDetector>()` without the event queue's
    /// heap (reserved once for 8 events, 64 bytes each). Asserted by a test; quoted in
    /// `docs/inband.md`.
    pub const STATE_BYTES: usize = std::mem::size_of::<InbandDetector>();
}

// The state size is documented (docs/inband.md); growing it past 1 KiB must be a decision,
// so it stops the build.
const _: () = assert!(InbandDetector::STATE_BYTES <= 1024);

impl InbandDetector {
    /// A detector with `config`.
    pub fn new(mut config: InbandConfig) -> InbandDetector {
        config.kernel = config.kernel.or_portable();
        let db = |d: Decibels| 10f32.powf(d.0 / 10.0);
        let thresholds = Thresholds {
            min_energy: energy_of(config.min_level.0),
            onset_rise: db(config.min_onset_rise),
            standard_twist: db(config.max_standard_twist),
            reverse_twist: db(config.max_reverse_twist),
            relative_peak: db(config.relative_peak),
        };
        InbandDetector {
            config,
            thresholds,
            buf: [0; BLOCK],
            fill: 0,
            block_start: 0,
            next: None,
            prev_half: [Complex::default(); 8],
            prev_window: [Complex::default(); 8],
            last_energies: [0.0; 8],
            prev_energies: [0.0; 8],
            earlier_energies: [[0.0; 8]; 2],
            blocks: 0,
            candidate: None,
            active: None,
            events: VecDeque::with_capacity(8),
        }
    }

    /// The Goertzel kernel this detector runs: [`InbandConfig::kernel`], or the portable one
    /// when this CPU cannot run it.
    pub fn kernel(&self) -> Kernel {
        self.config.kernel
    }

    /// The configuration.
    pub fn config(&self) -> &InbandConfig {
        &self.config
    }

    /// Feeds `samples` (16-bit linear, 8 kHz) whose first sample is at `time`. A jump forward
    /// in time is heard as silence (up to 40 ms, enough to end any press; the rest is skipped);
    /// samples before the time already processed are dropped.
    pub fn handle_samples(&mut self, time: MediaTime, samples: &[i16]) -> Result<(), InbandError> {
        if time.rate() != ClockRate::NARROWBAND {
            return Err(InbandError::UnsupportedRate {
                hz: time.rate().hz(),
            });
        }
        let mut samples = samples;
        let t = time.ticks();
        match self.next {
            Some(next) if t > next => {
                let gap = t - next;
                let silence = gap.min(4 * BLOCK as u64) as usize;
                self.push(&[0; 4 * BLOCK][..silence]);
                if gap > silence as u64 {
                    self.fill = 0;
                }
                self.next = Some(t);
            }
            Some(next) if t < next => {
                let skip = ((next - t) as usize).min(samples.len());
                samples = &samples[skip..];
            }
            Some(_) => {}
            None => self.next = Some(t),
        }
        self.push(samples);
        Ok(())
    }

    /// The input ended: the partial block is completed with silence and an open press ends.
    pub fn finish(&mut self) {
        if self.fill > 0 {
            let missing = BLOCK - self.fill;
            self.push(&[0; BLOCK][..missing]);
        }
        forget(&mut self.candidate);
        if let Some(track) = self.active {
            forget(&mut self.active);
            self.emit_press(&track, Ending::EndOfInput);
        }
    }

    /// The next event, in order.
    pub fn poll_event(&mut self) -> Option<InbandEvent> {
        self.events.pop_front()
    }

    /// Blocks analysed so far.
    pub fn blocks(&self) -> u64 {
        self.blocks
    }

    /// Level in dBm0 at each of the eight DTMF frequencies over the last block (697 ... 1633
    /// Hz), for plots and diagnosis.
    pub fn band_levels(&self) -> [f32; 8] {
        self.last_energies.map(|e| level_of(e, 1.0))
    }

    fn push(&mut self, mut samples: &[i16]) {
        while !samples.is_empty() {
            if self.fill == 0 {
                self.block_start = self.next.unwrap_or(0);
                // Whole blocks are analysed where they lie, without the copy into `buf`.
                if let Some((block, rest)) = samples.split_first_chunk::<BLOCK>() {
                    samples = rest;
                    if let Some(next) = self.next.as_mut() {
                        *next += BLOCK as u64;
                    }
                    self.block(block);
                    continue;
                }
            }
            let take = (BLOCK - self.fill).min(samples.len());
            self.buf[self.fill..self.fill + take].copy_from_slice(&samples[..take]);
            self.fill += take;
            samples = &samples[take..];
            if let Some(next) = self.next.as_mut() {
                *next += take as u64;
            }
            if self.fill == BLOCK {
                self.fill = 0;
                let buf = self.buf;
                self.block(&buf);
            }
        }
    }

    fn block(&mut self, samples: &[i16; BLOCK]) {
        let shared = shared(self.config.kernel);
        let input: [f32; BLOCK] = samples.map(f32::from);
        // No bin of an 80-sample window can hold more than 80 times the block's energy
        // (Cauchy-Schwarz), so a block too quiet for that to reach the level threshold cannot
        // be a hit: its filters are not run. Silence, hold music's pauses and comfort noise
        // then cost an energy sum. Its window values count as zero for the next block's
        // frequency estimate, an error below the threshold.
        let energy = Bank::energy(&input);
        let spectrum = if BLOCK as f32 * energy < self.thresholds.min_energy {
            BlockSpectrum {
                energy,
                ..BlockSpectrum::default()
            }
        } else {
            shared.bank.analyse_with_energy(&input, energy)
        };
        let hit = self.classify(shared, &spectrum, &input);
        self.blocks += 1;
        let block = self.block_start;
        match hit {
            Some(hit) if self.active.as_ref().is_some_and(|a| a.same_key(&hit)) => {
                self.active.as_mut().expect("checked").add(block, &hit);
                forget(&mut self.candidate);
            }
            Some(hit) => {
                self.miss_active();
                match self.candidate.as_mut() {
                    Some(c) if c.same_key(&hit) => c.add(block, &hit),
                    _ => {
                        let e = &self.prev_energies;
                        let before = e[hit.row as usize] + e[4 + hit.col as usize];
                        let e = &self.earlier_energies[1];
                        let onset = [e[hit.row as usize], e[4 + hit.col as usize]];
                        forget(&mut self.candidate);
                        self.candidate = Some(Track::new(block, &hit, before, onset));
                    }
                }
                let ready = self
                    .candidate
                    .as_ref()
                    .is_some_and(|c| c.confirmable(&self.config, &self.thresholds));
                if ready {
                    if let Some(old) = self.active {
                        forget(&mut self.active);
                        self.emit_press(&old, Ending::ToneEnd);
                    }
                    let mut track = self.candidate.expect("checked");
                    forget(&mut self.candidate);
                    track.confirmed = true;
                    self.events.push_back(InbandEvent::PressStarted {
                        key: track.key(),
                        start: MediaTime::new(track.start(), ClockRate::NARROWBAND),
                    });
                    self.active = Some(track);
                }
            }
            None => {
                self.miss_active();
                if let Some(c) = self.candidate.as_mut() {
                    c.miss(&self.last_energies);
                    if c.misses >= END_MISSES {
                        forget(&mut self.candidate);
                    }
                }
            }
        }
    }

    fn miss_active(&mut self) {
        if let Some(a) = self.active.as_mut() {
            a.miss(&self.last_energies);
            if a.misses >= END_MISSES {
                let track = self.active.expect("checked");
                forget(&mut self.active);
                self.emit_press(&track, Ending::ToneEnd);
            }
        }
    }

    /// Decides whether a block is a hit, and keeps the windows for the next block.
    fn classify(
        &mut self,
        shared: &Shared,
        spectrum: &BlockSpectrum,
        input: &[f32; BLOCK],
    ) -> Option<Hit> {
        let bank = &shared.bank;
        let mut mid = [Complex::default(); 8];
        let mut full = [Complex::default(); 8];
        let mut energies = [0.0f32; 8];
        for k in 0..8 {
            mid[k] = bank.window(k, self.prev_half[k], spectrum.halves[0][k]);
            full[k] = bank.window(k, spectrum.halves[0][k], spectrum.halves[1][k]);
            energies[k] = full[k].norm_sqr();
        }
        let prev_window = self.prev_window;
        self.prev_half = spectrum.halves[1];
        self.prev_window = full;
        self.earlier_energies = [self.prev_energies, self.earlier_energies[0]];
        self.prev_energies = self.last_energies;
        self.last_energies = energies;

        let th = &self.thresholds;
        let argmax =
            |e: &[f32]| (0..4).fold(0usize, |best, i| if e[i] > e[best] { i } else { best });
        let row = argmax(&energies[..4]);
        let col = argmax(&energies[4..]);
        let (low, high) = (energies[row], energies[4 + col]);
        if low < th.min_energy || high < th.min_energy {
            return None;
        }
        if high > low * th.reverse_twist || low > high * th.standard_twist {
            return None;
        }
        let peaks_clear = |e: &[f32], best: usize| {
            (0..4).all(|i| i == best || e[i] * th.relative_peak <= e[best])
        };
        if !peaks_clear(&energies[..4], row) || !peaks_clear(&energies[4..], col) {
            return None;
        }
        let mut product = [Complex::default(); 2];
        for (g, k) in [row, 4 + col].into_iter().enumerate() {
            let p = mid[k]
                .mul_conj(prev_window[k])
                .add(full[k].mul_conj(mid[k]))
                .mul(shared.unrotate[k]);
            // |arg p| within the gate's angle, as cos(arg p) >= cos(gate): no atan2.
            if p.re < shared.gate_cos[k] * p.abs() {
                return None;
            }
            product[g] = p;
        }
        // Purity: the two tones against everything else in the block except dial tone.
        let tones = 2.0 / BLOCK as f32 * (low + high);
        let min = self.config.min_purity;
        if tones < min * spectrum.energy {
            // A tone off its bin puts less than its energy in the bin (a 1.5 % offset 13 % less
            // at the top bin): the measured offsets, up to the press limit, undo that; and dial
            // tone is set aside. Both cost an atan2 and three filters, so only blocks that need
            // them pay (a few per second of speech; clean key tones do not).
            let gain = |g: usize| {
                let k = if g == 0 { row } else { 4 + col };
                let limit = self.config.max_frequency_error * FREQUENCIES[k];
                window_gain(offset_hz(product[g]).clamp(-limit, limit)).powi(2)
            };
            let tones = 2.0 / BLOCK as f32 * (low / gain(0) + high / gain(1));
            // At most twice the pair's energy: dial tone up to 3 dB above the DTMF is heard
            // through; music whose bass fills these bins far above the "tones" is not.
            if tones < min * (spectrum.energy - 2.0 * tones).max(0.0) {
                return None;
            }
            let dial = (2.0 / BLOCK as f32 * shared.dial.energy(input)).min(2.0 * tones);
            if tones < min * (spectrum.energy - dial).max(0.0) {
                return None;
            }
        }
        Some(Hit {
            row: row as u8,
            col: col as u8,
            energy: low + high,
            low,
            high,
            product,
        })
    }

    fn emit_press(&mut self, track: &Track, ending: Ending) {
        let rate = ClockRate::NARROWBAND;
        let start = track.start();
        let end = track.end().max(start);
        let offsets = track.offsets();
        let low = level_of(track.max_levels[0], window_gain(offsets[0]));
        let high = level_of(track.max_levels[1], window_gain(offsets[1]));
        let louder = low.max(high).round().clamp(-63.0, 0.0) as i8;
        self.events.push_back(InbandEvent::Press(InbandPress {
            press: KeyPress::new(
                track.key(),
                MediaTime::new(start, rate),
                MediaDuration::new(end - start, rate),
                Some(Dbm0(louder)),
                Source::Inband,
            ),
            low_level: LevelDbm0(low),
            high_level: LevelDbm0(high),
            twist: Decibels(high - low),
            frequency_error: track.frequency_errors(),
            ending,
        }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn level_conversions_agree() {
        for level in [-3.0f32, -20.0, -36.0, -55.0] {
            let back = level_of(energy_of(level), 1.0);
            assert!((back - level).abs() < 0.01, "{level} -> {back}");
        }
        assert!((window_gain(0.0) - 1.0).abs() < 1e-6);
        // A tone a full bin (100 Hz) away from an 80-sample bin is at a null.
        assert!(window_gain(100.0) < 1e-3);
    }

    #[test]
    fn wrong_clock_rate_is_refused() {
        let mut d = InbandDetector::default();
        let t = MediaTime::new(0, ClockRate::new(16000).unwrap());
        assert_eq!(
            d.handle_samples(t, &[0; 10]),
            Err(InbandError::UnsupportedRate { hz: 16000 })
        );
    }
}
