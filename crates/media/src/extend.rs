//! Wrap-safe extension of RTP sequence numbers (16 bits) and timestamps (32 bits) to 64 bits.
//!
//! A value is placed next to the highest value seen so far: a forward step of less than half
//! the range counts as forward (crossing a wrap if needed), anything else as a late packet from
//! before it. The first value is mapped to `value + 2^BITS`, so a packet reordered from before
//! a wrap right at the start of a stream still gets a smaller, non-negative extended value.

/// Extends a counter of `BITS` bits (16 for sequence numbers, 32 for timestamps) to 64 bits.
#[derive(Clone, Debug, Default)]
pub struct Extender<const BITS: u32> {
    highest: Option<u64>,
}

/// Extender for RTP sequence numbers.
pub type SeqExtender = Extender<16>;
/// Extender for RTP timestamps.
pub type TimestampExtender = Extender<32>;

impl<const BITS: u32> Extender<BITS> {
    const RANGE: u64 = 1 << BITS;
    const MASK: u64 = Self::RANGE - 1;

    /// A fresh extender that has seen nothing.
    pub fn new() -> Self {
        Extender { highest: None }
    }

    /// Extends `value` (only its low `BITS` bits are used) and remembers it if it is the
    /// highest so far.
    pub fn extend(&mut self, value: u32) -> u64 {
        let value = u64::from(value) & Self::MASK;
        let Some(highest) = self.highest else {
            let first = Self::RANGE + value;
            self.highest = Some(first);
            return first;
        };
        let extended = Self::place(highest, value);
        if extended > highest {
            self.highest = Some(extended);
        }
        extended
    }

    /// Extends `value` relative to the highest seen, without remembering it.
    pub fn peek(&self, value: u32) -> Option<u64> {
        self.highest
            .map(|h| Self::place(h, u64::from(value) & Self::MASK))
    }

    /// The highest extended value seen.
    pub fn highest(&self) -> Option<u64> {
        self.highest
    }

    fn place(highest: u64, value: u64) -> u64 {
        let forward = value.wrapping_sub(highest & Self::MASK) & Self::MASK;
        if forward < Self::RANGE / 2 {
            highest + forward
        } else {
            // Behind the highest: a late or duplicated packet.
            highest.saturating_sub(Self::RANGE - forward)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_numbers_cross_the_16_bit_wrap() {
        let mut seq = SeqExtender::new();
        let a = seq.extend(65534);
        let b = seq.extend(65535);
        let c = seq.extend(0);
        let d = seq.extend(1);
        assert_eq!([b - a, c - b, d - c], [1, 1, 1]);
        // A late packet from before the wrap stays before it.
        assert_eq!(seq.extend(65535), b);
        assert_eq!(seq.highest(), Some(d));
    }

    #[test]
    fn timestamps_cross_the_32_bit_wrap() {
        let mut ts = TimestampExtender::new();
        let a = ts.extend(0xFFFF_FF00);
        let b = ts.extend(0x0000_0060);
        assert_eq!(b - a, 0x160);
    }

    #[test]
    fn a_packet_from_before_a_wrap_at_the_very_start_stays_earlier() {
        let mut seq = SeqExtender::new();
        let first = seq.extend(0);
        let late = seq.extend(65535);
        assert_eq!(first - late, 1);
    }
}
