//! The Goertzel filter bank of the in-band DTMF detector: the eight DTMF frequencies, measured
//! on blocks of 80 samples (10 ms at 8 kHz), with the phase kept.
//!
//! Each block is analysed as four quarters of 20 samples. The quarters' recursions do not
//! depend on each other, so the thirty-two filters (8 frequencies x 4 quarters) run side by
//! side as SIMD lanes and the loop-carried chain is a quarter long; the quarter values are
//! joined exactly into two half-block values. From the complex half-block values `H` the bank
//! forms, for every frequency,
//!
//! - the full-block value `X = H_a + e^(-jωM)·H_b` (M = 40): an 80-sample DFT at the bin;
//! - the 80-sample DFT of the window that starts half a block earlier (previous block's second
//!   half and this block's first half), for free.
//!
//! Consecutive 80-sample windows 40 samples apart have a phase step of `ω0·40` for a tone at
//! `ω0`, so the product of one window's value with the conjugate of the previous one measures
//! the tone's frequency to a fraction of a hertz, unambiguously within ±100 Hz of the bin, with
//! the leakage of an 80-sample window (the other DTMF group is at least 2.7 bins away). That is
//! what lets the detector reject a tone 3.5 % off while accepting one 1.5 % off, without
//! widening or narrowing any filter (see `docs/inband.md`).
//!
//! Two kernels ([`Kernel`]), one source, chosen once per process by [`Bank::new`]:
//!
//! - [`Kernel::Portable`]: multiply and add; what any target gets (baseline x86-64: SSE2, four
//!   lanes).
//! - [`Kernel::Avx2Fma`] (x86-64 CPUs with AVX2 and FMA, which every x86 server since about
//!   2015 has): the same loop compiled for those features, eight lanes and one fused
//!   multiply-add per step. Calling it is the crate's only `unsafe`, after the CPU was
//!   checked. The two kernels differ by rounding only.

use std::f32::consts::PI;
use std::ops::{Add, Mul};

/// Sample rate the bank works at.
pub const SAMPLE_RATE: f32 = 8000.0;
/// Samples in one analysis block (10 ms at 8 kHz).
pub const BLOCK: usize = 80;
/// Samples in one half block.
pub const HALF: usize = BLOCK / 2;
/// Samples in one quarter block (the segments the recursions run on).
const QUARTER: usize = BLOCK / 4;
/// The DTMF frequencies: four low-group (rows), four high-group (columns).
pub const FREQUENCIES: [f32; 8] = [697.0, 770.0, 852.0, 941.0, 1209.0, 1336.0, 1477.0, 1633.0];

/// A complex number, just enough for the bank.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Complex {
    /// Real part.
    pub re: f32,
    /// Imaginary part.
    pub im: f32,
}

impl Complex {
    /// `re + j·im`.
    pub const fn new(re: f32, im: f32) -> Complex {
        Complex { re, im }
    }

    /// `e^(jθ)`.
    pub fn from_angle(theta: f32) -> Complex {
        Complex::new(theta.cos(), theta.sin())
    }

    /// `self · conj(o)`.
    #[inline]
    pub fn mul_conj(self, o: Complex) -> Complex {
        Complex::new(
            self.re * o.re + self.im * o.im,
            self.im * o.re - self.re * o.im,
        )
    }

    /// Squared magnitude.
    #[inline]
    pub fn norm_sqr(self) -> f32 {
        self.re * self.re + self.im * self.im
    }

    /// Magnitude.
    pub fn abs(self) -> f32 {
        self.norm_sqr().sqrt()
    }

    /// Angle in radians, (-π, π].
    pub fn arg(self) -> f32 {
        self.im.atan2(self.re)
    }
}

impl Mul for Complex {
    type Output = Complex;

    #[inline]
    fn mul(self, o: Complex) -> Complex {
        Complex::new(
            self.re * o.re - self.im * o.im,
            self.re * o.im + self.im * o.re,
        )
    }
}

impl Add for Complex {
    type Output = Complex;

    #[inline]
    fn add(self, o: Complex) -> Complex {
        Complex::new(self.re + o.re, self.im + o.im)
    }
}

/// How the bank runs its recursions (see the module documentation).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kernel {
    /// Two halves, sixteen recursions, multiply and add: any target.
    Portable,
    /// Four quarters, thirty-two recursions, fused multiply-add: x86-64 with AVX2 and FMA.
    Avx2Fma,
}

impl Default for Kernel {
    /// [`Kernel::detect`].
    fn default() -> Kernel {
        Kernel::detect()
    }
}

impl Kernel {
    /// The fastest kernel this CPU runs.
    pub fn detect() -> Kernel {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            return Kernel::Avx2Fma;
        }
        Kernel::Portable
    }

    /// Whether this CPU can run the kernel.
    pub fn available(self) -> bool {
        match self {
            Kernel::Portable => true,
            Kernel::Avx2Fma => Kernel::detect() == Kernel::Avx2Fma,
        }
    }

    /// This kernel if this CPU runs it, else [`Kernel::Portable`].
    pub fn or_portable(self) -> Kernel {
        if self.available() {
            self
        } else {
            Kernel::Portable
        }
    }

    /// Name, as shown by benchmarks and `tonegate conformance`.
    pub fn name(self) -> &'static str {
        match self {
            Kernel::Portable => "portable",
            Kernel::Avx2Fma => "avx2+fma",
        }
    }
}

/// The constants of the bank (shared by every channel; about 360 bytes).
#[derive(Clone, Debug)]
pub struct Bank {
    /// `2cos(ω)` per bin.
    coef: [f32; 8],
    /// `e^(-jω)` per bin (final Goertzel step).
    step: [Complex; 8],
    /// `e^(-jω(Q-1))` per bin: refers a quarter's value to its first sample (Q = 20).
    refer: [Complex; 8],
    /// `e^(-jωQ)` per bin: moves a quarter's value to the start of the half.
    quarter_shift: [Complex; 8],
    /// `e^(-jωM)` per bin: moves a second half's value to the start of the window (M = 40).
    shift: [Complex; 8],
    /// Only ever [`Kernel::Avx2Fma`] when this CPU has AVX2 and FMA ([`Bank::with_kernel`]
    /// checks): the `unsafe` call in [`Bank::analyse_with_energy`] relies on it.
    kernel: Kernel,
}

impl Default for Bank {
    fn default() -> Self {
        Bank::new()
    }
}

/// What one block of 80 samples holds at the eight frequencies.
#[derive(Clone, Copy, Debug, Default)]
pub struct BlockSpectrum {
    /// The two half-block values per bin, each referred to its own first sample.
    pub halves: [[Complex; 8]; 2],
    /// Sum of squared samples over the block.
    pub energy: f32,
}

impl Bank {
    /// The bank for the eight DTMF frequencies at 8 kHz, with the fastest kernel this CPU
    /// runs ([`Kernel::detect`]).
    pub fn new() -> Bank {
        Bank::with_kernel(Kernel::detect()).expect("the detected kernel runs here")
    }

    /// The bank with a given kernel; `None` when this CPU cannot run it.
    pub fn with_kernel(kernel: Kernel) -> Option<Bank> {
        if !kernel.available() {
            return None;
        }
        let mut bank = Bank {
            coef: [0.0; 8],
            step: [Complex::default(); 8],
            refer: [Complex::default(); 8],
            quarter_shift: [Complex::default(); 8],
            shift: [Complex::default(); 8],
            kernel,
        };
        for (k, f) in FREQUENCIES.iter().enumerate() {
            let w = 2.0 * PI * f / SAMPLE_RATE;
            bank.coef[k] = 2.0 * w.cos();
            bank.step[k] = Complex::from_angle(-w);
            bank.refer[k] = Complex::from_angle(-w * (QUARTER as f32 - 1.0));
            bank.quarter_shift[k] = Complex::from_angle(-w * QUARTER as f32);
            bank.shift[k] = Complex::from_angle(-w * HALF as f32);
        }
        Some(bank)
    }

    /// The kernel this bank runs.
    pub fn kernel(&self) -> Kernel {
        self.kernel
    }

    /// `e^(-jωM)` for bin `k`: see [`Bank::window`].
    pub fn shift(&self, k: usize) -> Complex {
        self.shift[k]
    }

    /// The 80-sample DFT value of bin `k` over two consecutive halves `first`, `second`.
    #[inline]
    pub fn window(&self, k: usize, first: Complex, second: Complex) -> Complex {
        first.add(self.shift[k].mul(second))
    }

    /// Sum of squared samples of a block.
    pub fn energy(block: &[f32; BLOCK]) -> f32 {
        // Eight partial sums, so the sum vectorises.
        let mut lanes = [0.0f32; 8];
        for chunk in block.chunks_exact(8) {
            for (l, &x) in lanes.iter_mut().zip(chunk) {
                *l += x * x;
            }
        }
        lanes.iter().sum()
    }

    /// Analyses one block. Allocation-free; the sixteen recursions run as lanes.
    pub fn analyse(&self, block: &[f32; BLOCK]) -> BlockSpectrum {
        self.analyse_with_energy(block, Bank::energy(block))
    }

    /// [`Bank::analyse`] for a block whose energy ([`Bank::energy`]) the caller already has.
    #[inline]
    pub fn analyse_with_energy(&self, block: &[f32; BLOCK], energy: f32) -> BlockSpectrum {
        let halves = match self.kernel {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `kernel` is `Avx2Fma` only when `Bank::with_kernel` found AVX2 and FMA
            // on this CPU (the field is private and set nowhere else), which is what the
            // `#[target_feature]` function requires of its caller.
            #[allow(unsafe_code)]
            Kernel::Avx2Fma => unsafe { self.halves_avx2_fma(block) },
            _ => self.halves_portable(block),
        };
        BlockSpectrum { halves, energy }
    }

    fn halves_portable(&self, block: &[f32; BLOCK]) -> [[Complex; 8]; 2] {
        self.halves::<false>(block)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    fn halves_avx2_fma(&self, block: &[f32; BLOCK]) -> [[Complex; 8]; 2] {
        self.halves::<true>(block)
    }

    /// The two half-block values per bin, from the four quarters' recursions.
    #[inline(always)]
    fn halves<const FMA: bool>(&self, block: &[f32; BLOCK]) -> [[Complex; 8]; 2] {
        let (s1, s2) = recursions::<FMA>(&self.coef, block);
        let mut out = [[Complex::default(); 8]; 2];
        for (h, half) in out.iter_mut().enumerate() {
            for (k, value) in half.iter_mut().enumerate() {
                let (a, b) = (2 * h, 2 * h + 1);
                let first = finish(self.step[k], self.refer[k], s1[a][k], s2[a][k]);
                let second = finish(self.step[k], self.refer[k], s1[b][k], s2[b][k]);
                *value = first.add(self.quarter_shift[k].mul(second));
            }
        }
        out
    }
}

/// The last Goertzel step, `y = s1 - e^(-jω)·s2` (with `step = e^(-jω) = cos ω - j sin ω`),
/// referred to the segment's first sample by `refer = e^(-jω(L-1))`.
#[inline(always)]
fn finish(step: Complex, refer: Complex, s1: f32, s2: f32) -> Complex {
    let y = Complex::new(s1 - step.re * s2, -step.im * s2);
    y.mul(refer)
}

/// The Goertzel recursions of a block cut into four quarters, all eight bins of all quarters
/// side by side (thirty-two lanes); returns the last two states (`s[Q-1]`, `s[Q-2]`) per
/// quarter and bin. `FMA`: `c·s1 + (x - s2)` as one fused multiply-add (only where the caller
/// is compiled with FMA; elsewhere `mul_add` is a slow library call).
///
/// Quarters rather than halves: the loop-carried chain per block is twenty steps instead of
/// forty, and the loop is bound by the adds' throughput instead of the chain's latency (on
/// SSE2 too, where it spills: 465 -> 520 Msamples/s). Two samples per turn, with the two state
/// variables trading roles (s2 takes s[n], then s1 takes s[n+1]): no register copies.
/// `(x - s2)` does not wait for s1: the chain per sample is one multiply and one add (or one
/// fused multiply-add).
#[inline(always)]
fn recursions<const FMA: bool>(
    coef: &[f32; 8],
    block: &[f32; BLOCK],
) -> ([[f32; 8]; 4], [[f32; 8]; 4]) {
    let mac = |c: f32, s: f32, t: f32| if FMA { c.mul_add(s, t) } else { t + c * s };
    let mut s1 = [[0.0f32; 8]; 4];
    let mut s2 = [[0.0f32; 8]; 4];
    for n in (0..QUARTER).step_by(2) {
        for q in 0..4 {
            let x = block[q * QUARTER + n];
            for k in 0..8 {
                s2[q][k] = mac(coef[k], s1[q][k], x - s2[q][k]);
            }
        }
        for q in 0..4 {
            let x = block[q * QUARTER + n + 1];
            for k in 0..8 {
                s1[q][k] = mac(coef[k], s2[q][k], x - s1[q][k]);
            }
        }
    }
    (s1, s2)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dft(x: &[f32], f: f32) -> Complex {
        let w = 2.0 * PI * f / SAMPLE_RATE;
        x.iter()
            .enumerate()
            .fold(Complex::default(), |acc, (n, &v)| {
                acc.add(Complex::from_angle(-w * n as f32).mul(Complex::new(v, 0.0)))
            })
    }

    #[test]
    fn halves_and_windows_equal_a_direct_dft_with_every_kernel() {
        let mut block = [0.0f32; BLOCK];
        for (n, s) in block.iter_mut().enumerate() {
            let t = n as f32 / SAMPLE_RATE;
            *s = 9000.0 * (2.0 * PI * 720.0 * t + 0.3).sin()
                + 4000.0 * (2.0 * PI * 1500.0 * t).cos()
                + 300.0 * ((n * 7919) % 61) as f32 / 61.0;
        }
        let kernels: Vec<Bank> = [Kernel::Portable, Kernel::Avx2Fma]
            .into_iter()
            .filter_map(Bank::with_kernel)
            .collect();
        assert_eq!(
            kernels[0].kernel(),
            Kernel::Portable,
            "the portable one always runs"
        );
        for bank in &kernels {
            let spec = bank.analyse(&block);
            let kernel = bank.kernel().name();
            for (k, &f) in FREQUENCIES.iter().enumerate() {
                for (h, half) in [&block[..HALF], &block[HALF..]].iter().enumerate() {
                    let want = dft(half, f);
                    let got = spec.halves[h][k];
                    assert!(
                        (want.re - got.re).abs() < 2.0 && (want.im - got.im).abs() < 2.0,
                        "{kernel}: {f} half {h}: {want:?} != {got:?}"
                    );
                }
                let want = dft(&block, f);
                let got = bank.window(k, spec.halves[0][k], spec.halves[1][k]);
                assert!(
                    (want.re - got.re).abs() < 4.0 && (want.im - got.im).abs() < 4.0,
                    "{kernel}: {f} full"
                );
            }
            let energy: f32 = block.iter().map(|x| x * x).sum();
            assert!((spec.energy / energy - 1.0).abs() < 1e-4);
        }
    }

    #[test]
    fn the_detected_kernel_is_one_this_cpu_runs() {
        assert!(Kernel::detect().available());
        assert_eq!(Bank::new().kernel(), Kernel::detect());
        #[cfg(not(target_arch = "x86_64"))]
        assert!(Bank::with_kernel(Kernel::Avx2Fma).is_none());
    }
}
