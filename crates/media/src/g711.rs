//! G.711 mu-law and A-law: table-based decoding to 16-bit linear PCM, and the encoders the
//! tests and fixtures use to round-trip tones.
//!
//! The decode tables are built at compile time from the ITU-T G.711 segment rules (the same
//! expansion as the reference `ulaw2linear`/`alaw2linear` of Sun's public-domain g711.c), so
//! decoding is one indexed load per sample. Linear values are on the 16-bit scale: mu-law
//! spans ±32124, A-law ±32256.
//!
//! Level reference (used by [`crate::inband`] and documented in `docs/inband.md`): a sine of
//! full 16-bit amplitude is +3.14 dBm0, the G.711 overload point, so a sine of amplitude `A` is
//! `20·log10(A / 32767) + 3.14` dBm0.

/// The dBm0 level of a full-scale (amplitude 32767) sine wave on the 16-bit linear scale.
// 3.14 dB is G.711's overload point (ITU-T G.711 §2: the digital milliwatt), not π.
#[allow(clippy::approx_constant)]
pub const FULL_SCALE_SINE_DBM0: f32 = 3.14;

/// mu-law byte to linear, for every byte value.
pub const ULAW_TO_LINEAR: [i16; 256] = build_ulaw();
/// A-law byte to linear, for every byte value.
pub const ALAW_TO_LINEAR: [i16; 256] = build_alaw();

const fn build_ulaw() -> [i16; 256] {
    let mut table = [0i16; 256];
    let mut i = 0;
    while i < 256 {
        let u = !(i as u8);
        let mut t = (((u & 0x0F) as i32) << 3) + 0x84;
        t <<= (u & 0x70) >> 4;
        table[i] = if u & 0x80 != 0 { 0x84 - t } else { t - 0x84 } as i16;
        i += 1;
    }
    table
}

const fn build_alaw() -> [i16; 256] {
    let mut table = [0i16; 256];
    let mut i = 0;
    while i < 256 {
        let a = (i as u8) ^ 0x55;
        let mut t = ((a & 0x0F) as i32) << 4;
        let seg = (a & 0x70) >> 4;
        match seg {
            0 => t += 8,
            1 => t += 0x108,
            _ => {
                t += 0x108;
                t <<= seg - 1;
            }
        }
        table[i] = if a & 0x80 != 0 { t } else { -t } as i16;
        i += 1;
    }
    table
}

/// A G.711 companding law.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Law {
    /// mu-law (PCMU, RTP payload type 0, WAV format tag 7).
    Mu,
    /// A-law (PCMA, RTP payload type 8, WAV format tag 6).
    A,
}

impl Law {
    /// The decode table of this law.
    pub fn table(self) -> &'static [i16; 256] {
        match self {
            Law::Mu => &ULAW_TO_LINEAR,
            Law::A => &ALAW_TO_LINEAR,
        }
    }

    /// Decodes `bytes` into `out` (cleared first).
    pub fn decode_into(self, bytes: &[u8], out: &mut Vec<i16>) {
        let table = self.table();
        out.clear();
        out.extend(bytes.iter().map(|&b| table[usize::from(b)]));
    }

    /// Encodes one linear sample.
    pub fn encode(self, sample: i16) -> u8 {
        match self {
            Law::Mu => linear_to_ulaw(sample),
            Law::A => linear_to_alaw(sample),
        }
    }
}

/// Encodes a linear sample as mu-law (G.711, with the usual 0x84 bias and 32635 clip).
pub fn linear_to_ulaw(sample: i16) -> u8 {
    const BIAS: i32 = 0x84;
    const CLIP: i32 = 32635;
    let mut s = i32::from(sample);
    let sign = if s < 0 {
        s = -s;
        0x80
    } else {
        0
    };
    let s = s.min(CLIP) + BIAS;
    let exponent = (31 - (s as u32).leading_zeros()).saturating_sub(7).min(7);
    let mantissa = (s >> (exponent + 3)) & 0x0F;
    !(sign | ((exponent as i32) << 4) | mantissa) as u8
}

/// Encodes a linear sample as A-law (G.711).
pub fn linear_to_alaw(sample: i16) -> u8 {
    let mut s = i32::from(sample) >> 3;
    let mask = if s >= 0 {
        0xD5
    } else {
        s = -s - 1;
        0x55
    };
    let seg_ends = [0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF];
    let seg = seg_ends.iter().position(|&end| s <= end).unwrap_or(8) as i32;
    if seg >= 8 {
        return (0x7F ^ mask) as u8;
    }
    let mut a = seg << 4;
    a |= if seg < 2 {
        (s >> 1) & 0x0F
    } else {
        (s >> seg) & 0x0F
    };
    (a ^ mask) as u8
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_match_the_g711_reference_values() {
        // Spot values from the reference g711.c expansion.
        assert_eq!(ULAW_TO_LINEAR[0x00], -32124);
        assert_eq!(ULAW_TO_LINEAR[0x80], 32124);
        assert_eq!(ULAW_TO_LINEAR[0xFF], 0);
        assert_eq!(ULAW_TO_LINEAR[0x7F], 0);
        assert_eq!(ULAW_TO_LINEAR[0xFE], 8);
        assert_eq!(ALAW_TO_LINEAR[0xD5], 8);
        assert_eq!(ALAW_TO_LINEAR[0x55], -8);
        assert_eq!(ALAW_TO_LINEAR[0xAA], 32256);
        assert_eq!(ALAW_TO_LINEAR[0x2A], -32256);
    }

    #[test]
    fn every_code_survives_decode_then_encode() {
        for law in [Law::Mu, Law::A] {
            for byte in 0..=255u8 {
                let linear = law.table()[usize::from(byte)];
                let back = law.encode(linear);
                // mu-law has two zeros (0x7F and 0xFF); both decode to 0.
                assert_eq!(
                    law.table()[usize::from(back)],
                    linear,
                    "{law:?} byte {byte:#04x}"
                );
            }
        }
    }

    #[test]
    fn decode_tables_are_monotonic_within_each_sign() {
        // Positive mu-law codes 0xFF down to 0x80 grow; a broken segment shift would not.
        let positive: Vec<i16> = (0x80..=0xFFu8)
            .rev()
            .map(|b| ULAW_TO_LINEAR[b as usize])
            .collect();
        assert!(positive.windows(2).all(|w| w[0] < w[1]));
        let mut a: Vec<i16> = (0..=255u8)
            .map(|b| ALAW_TO_LINEAR[b as usize])
            .filter(|&v| v > 0)
            .collect();
        a.sort_unstable();
        a.dedup();
        assert_eq!(a.len(), 128);
    }
}
