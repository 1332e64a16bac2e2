//! The Goertzel filter bank of the in-band DTMF detector: the eight DTMF frequencies, measured
//! on blocks of 80 samples (10 ms at 8 kHz), with the phase kept.
//!
//! Each block is analysed as two halves of 40 samples. The halves are independent recursions,
//! so the sixteen filters (8 frequencies x 2 halves) run side by side as one loop over 40
//! sample pairs, which the compiler turns into SIMD lanes; no `unsafe`, no intrinsics. From
//! the complex half-block values `H` the bank forms, for every frequency,
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

use std::f32::consts::PI;
use std::ops::{Add, Mul};

/// Sample rate the bank works at.
pub const SAMPLE_RATE: f32 = 8000.0;
/// Samples in one analysis block (10 ms at 8 kHz).
pub const BLOCK: usize = 80;
/// Samples in one half block.
pub const HALF: usize = BLOCK / 2;
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

/// The constants of the bank (shared by every channel; about 230 bytes).
#[derive(Clone, Debug)]
pub struct Bank {
    /// `2cos(ω)` per bin.
    coef: [f32; 8],
    /// `e^(-jω)` per bin (final Goertzel step).
    step: [Complex; 8],
    /// `e^(-jω(M-1))` per bin: refers a half's value to its first sample.
    refer: [Complex; 8],
    /// `e^(-jωM)` per bin: moves a second half's value to the start of the window.
    shift: [Complex; 8],
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
    /// The bank for the eight DTMF frequencies at 8 kHz.
    pub fn new() -> Bank {
        let mut bank = Bank {
            coef: [0.0; 8],
            step: [Complex::default(); 8],
            refer: [Complex::default(); 8],
            shift: [Complex::default(); 8],
        };
        for (k, f) in FREQUENCIES.iter().enumerate() {
            let w = 2.0 * PI * f / SAMPLE_RATE;
            bank.coef[k] = 2.0 * w.cos();
            bank.step[k] = Complex::from_angle(-w);
            bank.refer[k] = Complex::from_angle(-w * (HALF as f32 - 1.0));
            bank.shift[k] = Complex::from_angle(-w * HALF as f32);
        }
        bank
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
    pub fn analyse_with_energy(&self, block: &[f32; BLOCK], energy: f32) -> BlockSpectrum {
        let (a, b) = block.split_at(HALF);
        let mut s1a = [0.0f32; 8];
        let mut s2a = [0.0f32; 8];
        let mut s1b = [0.0f32; 8];
        let mut s2b = [0.0f32; 8];
        // Only the recursions in this loop: SSE has sixteen registers and the sixteen
        // recursions already fill them. Two samples per turn, with the two state variables
        // trading roles (s2 takes s[n], then s1 takes s[n+1]): no register copies, so the
        // state stays in registers instead of spilling.
        for (xa, xb) in a.chunks_exact(2).zip(b.chunks_exact(2)) {
            for k in 0..8 {
                // (x - s2) does not wait for s1: the chain per sample is one multiply and
                // one add, not a multiply and two adds.
                s2a[k] = (xa[0] - s2a[k]) + self.coef[k] * s1a[k];
                s2b[k] = (xb[0] - s2b[k]) + self.coef[k] * s1b[k];
            }
            for k in 0..8 {
                s1a[k] = (xa[1] - s1a[k]) + self.coef[k] * s2a[k];
                s1b[k] = (xb[1] - s1b[k]) + self.coef[k] * s2b[k];
            }
        }
        let mut out = BlockSpectrum {
            energy,
            ..BlockSpectrum::default()
        };
        for k in 0..8 {
            out.halves[0][k] = self.finish(k, s1a[k], s2a[k]);
            out.halves[1][k] = self.finish(k, s1b[k], s2b[k]);
        }
        out
    }

    /// The last Goertzel step, `y = s1 - e^(-jω)·s2` (with `e^(-jω) = cos ω - j sin ω`),
    /// referred to the half's first sample.
    #[inline]
    fn finish(&self, k: usize, s1: f32, s2: f32) -> Complex {
        let y = Complex::new(s1 - self.step[k].re * s2, -self.step[k].im * s2);
        y.mul(self.refer[k])
    }
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
    fn halves_and_windows_equal_a_direct_dft() {
        let mut block = [0.0f32; BLOCK];
        for (n, s) in block.iter_mut().enumerate() {
            let t = n as f32 / SAMPLE_RATE;
            *s = 9000.0 * (2.0 * PI * 720.0 * t + 0.3).sin()
                + 4000.0 * (2.0 * PI * 1500.0 * t).cos();
        }
        let bank = Bank::new();
        let spec = bank.analyse(&block);
        for (k, &f) in FREQUENCIES.iter().enumerate() {
            for (h, half) in [&block[..HALF], &block[HALF..]].iter().enumerate() {
                let want = dft(half, f);
                let got = spec.halves[h][k];
                assert!(
                    (want.re - got.re).abs() < 2.0 && (want.im - got.im).abs() < 2.0,
                    "{f} half {h}"
                );
            }
            let want = dft(&block, f);
            let got = bank.window(k, spec.halves[0][k], spec.halves[1][k]);
            assert!(
                (want.re - got.re).abs() < 4.0 && (want.im - got.im).abs() < 4.0,
                "{f} full"
            );
        }
        let energy: f32 = block.iter().map(|x| x * x).sum();
        assert!((spec.energy / energy - 1.0).abs() < 1e-4);
    }
}
