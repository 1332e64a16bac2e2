//! RTP audio for in-band detection: PCMU, PCMA and L16 payloads decoded to 8 kHz linear,
//! reordered within a small jitter window, losses filled with silence, and run through an
//! [`InbandDetector`]. Sans-IO: packets go in with their payload type and timestamp.
//!
//! - **Reordering.** Packets wait until the stream has moved [`AudioConfig::jitter_window`]
//!   (default 60 ms, three 20 ms packets) past them, and leave in timestamp order. A packet that
//!   arrives after audio beyond its timestamp has been released is dropped and counted
//!   ([`AudioStats::late`]); duplicates are dropped.
//! - **Loss.** A hole in the timeline is heard as silence (the detector's own rule: up to 40 ms
//!   of zeros, enough to end a press, then a jump). Silence rather than repeating the last
//!   packet: packet-loss concealment that repeats audio would repeat a tone and could lengthen
//!   a press or bridge two presses of one key; silence can at worst split a press whose
//!   packets were lost for more than 20 ms, which the sender's own RFC 4733 events, if any,
//!   cover (see [`crate::dedup`]). [`AudioStats::concealed`] counts the samples filled.
//! - **Codecs.** PCMU (payload type 0), PCMA (8), and L16 at 8 kHz mono on the dynamic
//!   payload types given in [`AudioConfig::l16_payload_types`] (RFC 3551's static L16 types
//!   10 and 11 are 44.1 kHz, which the detector does not take).

use std::fmt;

use zeroize::Zeroize;

use crate::extend::TimestampExtender;
use crate::g711::Law;
use crate::inband::{InbandDetector, InbandEvent};
use crate::time::{ClockRate, MediaTime, Millis};

/// Which payload types carry audio, and the reorder window.
#[derive(Clone, Debug)]
pub struct AudioConfig {
    /// Decode audio and detect in-band DTMF at all (default true).
    pub enabled: bool,
    /// PCMU payload types (default `[0]`).
    pub pcmu_payload_types: Vec<u8>,
    /// PCMA payload types (default `[8]`).
    pub pcma_payload_types: Vec<u8>,
    /// L16/8000 mono payload types (dynamic; none by default).
    pub l16_payload_types: Vec<u8>,
    /// How long a packet waits for earlier ones (default 60 ms).
    pub jitter_window: Millis,
}

impl Default for AudioConfig {
    fn default() -> Self {
        AudioConfig {
            enabled: true,
            pcmu_payload_types: vec![0],
            pcma_payload_types: vec![8],
            l16_payload_types: Vec::new(),
            jitter_window: Millis(60.0),
        }
    }
}

/// An audio payload format the stream understands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AudioCodec {
    /// G.711 mu-law.
    Pcmu,
    /// G.711 A-law.
    Pcma,
    /// 16-bit linear, network byte order, 8 kHz mono.
    L16,
}

impl AudioConfig {
    /// The codec of payload type `pt`, if it is audio this stream decodes.
    pub fn codec(&self, pt: u8) -> Option<AudioCodec> {
        if self.pcmu_payload_types.contains(&pt) {
            Some(AudioCodec::Pcmu)
        } else if self.pcma_payload_types.contains(&pt) {
            Some(AudioCodec::Pcma)
        } else if self.l16_payload_types.contains(&pt) {
            Some(AudioCodec::L16)
        } else {
            None
        }
    }
}

/// Counters of one audio stream.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AudioStats {
    /// Audio packets decoded.
    pub packets: u64,
    /// Packets dropped because audio after them had already been released.
    pub late: u64,
    /// Duplicate packets dropped.
    pub duplicates: u64,
    /// Samples of silence put in holes.
    pub concealed: u64,
}

/// No `Debug`: its samples may hold a key's tones.
#[derive(Clone)]
struct Pending {
    ts: u64,
    samples: Vec<i16>,
}

/// One RTP stream's audio path into the in-band detector. Its `Debug` shows settings, timing
/// and counters (its detector's included), never a sample; held samples are overwritten when
/// the stream is dropped.
#[derive(Clone)]
pub struct AudioStream {
    window: u64,
    timestamps: TimestampExtender,
    pending: Vec<Pending>,
    /// Timeline position up to which audio has been released.
    released: Option<u64>,
    detector: InbandDetector,
    stats: AudioStats,
    /// Sample buffers of released packets, reused so that steady-state audio allocates
    /// nothing (a fresh `Vec` per packet made a 256 MiB replay 2.7x slower).
    spare: Vec<Vec<i16>>,
}

impl fmt::Debug for AudioStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AudioStream")
            .field("window", &self.window)
            .field("released", &self.released)
            .field("pending_packets", &self.pending.len())
            .field("detector", &self.detector)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl Drop for AudioStream {
    fn drop(&mut self) {
        for pending in &mut self.pending {
            pending.samples.zeroize();
        }
        for spare in &mut self.spare {
            spare.zeroize();
        }
    }
}

/// Buffers kept for reuse: more than the jitter window ever holds.
const SPARE_BUFFERS: usize = 16;

impl AudioStream {
    /// A stream feeding `detector`, reordering within `window`.
    pub fn new(window: Millis, detector: InbandDetector) -> AudioStream {
        AudioStream {
            window: ClockRate::NARROWBAND.ticks_in(window),
            timestamps: TimestampExtender::new(),
            pending: Vec::with_capacity(8),
            released: None,
            detector,
            stats: AudioStats::default(),
            spare: Vec::new(),
        }
    }

    /// Counters so far.
    pub fn stats(&self) -> AudioStats {
        self.stats
    }

    /// Every RTP packet of the stream passes here so that timestamps extend exactly as in the
    /// RFC 4733 decoder (both map the stream's first packet the same way); `codec` is `None`
    /// for packets that are not audio.
    pub fn handle_rtp(&mut self, timestamp: u32, codec: Option<AudioCodec>, payload: &[u8]) {
        let ts = self.timestamps.extend(timestamp);
        let Some(codec) = codec else {
            return;
        };
        let mut samples = self.spare.pop().unwrap_or_default();
        samples.clear();
        match codec {
            AudioCodec::Pcmu => {
                samples.extend(payload.iter().map(|&b| Law::Mu.table()[usize::from(b)]))
            }
            AudioCodec::Pcma => {
                samples.extend(payload.iter().map(|&b| Law::A.table()[usize::from(b)]))
            }
            AudioCodec::L16 => samples.extend(
                payload
                    .chunks_exact(2)
                    .map(|b| i16::from_be_bytes([b[0], b[1]])),
            ),
        }
        if samples.is_empty() {
            self.recycle(samples);
            return;
        }
        if self.released.is_some_and(|r| ts < r) {
            self.stats.late += 1;
            self.recycle(samples);
            return;
        }
        match self.pending.binary_search_by_key(&ts, |p| p.ts) {
            Ok(_) => {
                self.stats.duplicates += 1;
                self.recycle(samples);
                return;
            }
            Err(at) => self.pending.insert(at, Pending { ts, samples }),
        }
        self.stats.packets += 1;
        let newest = self
            .pending
            .last()
            .map_or(0, |p| p.ts + p.samples.len() as u64);
        while self
            .pending
            .first()
            .is_some_and(|p| newest.saturating_sub(p.ts) > self.window)
        {
            let p = self.pending.remove(0);
            self.release(p);
        }
    }

    fn release(&mut self, p: Pending) {
        if let Some(r) = self.released {
            self.stats.concealed += p.ts.saturating_sub(r);
        }
        let end = p.ts + p.samples.len() as u64;
        self.released = Some(self.released.map_or(end, |r| r.max(end)));
        // The timeline is always 8 kHz here (PCMU, PCMA, L16/8000).
        let _ = self
            .detector
            .handle_samples(MediaTime::new(p.ts, ClockRate::NARROWBAND), &p.samples);
        self.recycle(p.samples);
    }

    fn recycle(&mut self, samples: Vec<i16>) {
        if self.spare.len() < SPARE_BUFFERS {
            self.spare.push(samples);
        }
    }

    /// The input ended: releases what waits and ends an open press.
    pub fn finish(&mut self) {
        for p in std::mem::take(&mut self.pending) {
            self.release(p);
        }
        self.detector.finish();
    }

    /// The next detector event.
    pub fn poll_event(&mut self) -> Option<InbandEvent> {
        self.detector.poll_event()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone_packets(key_ms: usize) -> Vec<(u32, Vec<u8>)> {
        // Key 9 (852 + 1477 Hz) at -10 dBm0 from 100 ms for `key_ms`, in 20 ms PCMU packets.
        let a = 32767.0 * 10f32.powf((-10.0 - crate::g711::FULL_SCALE_SINE_DBM0) / 20.0);
        let total = 8 * (400 + key_ms);
        let samples: Vec<u8> = (0..total)
            .map(|n| {
                let t = n as f32 / 8000.0;
                let on = (800..800 + 8 * key_ms).contains(&n);
                let v = if on {
                    a * ((2.0 * std::f32::consts::PI * 852.0 * t).sin()
                        + (2.0 * std::f32::consts::PI * 1477.0 * t).sin())
                } else {
                    0.0
                };
                Law::Mu.encode(v as i16)
            })
            .collect();
        samples
            .chunks(160)
            .enumerate()
            .map(|(i, c)| (1000 + 160 * i as u32, c.to_vec()))
            .collect()
    }

    fn run(packets: &[(u32, Vec<u8>)]) -> (Vec<(char, u64, u64)>, AudioStats) {
        let mut s = AudioStream::new(Millis(60.0), InbandDetector::default());
        let mut out = Vec::new();
        let mut drain = |s: &mut AudioStream| {
            while let Some(e) = s.poll_event() {
                if let InbandEvent::Press(p) = e {
                    out.push((
                        p.press.key().as_char(),
                        p.press.start().ticks(),
                        p.press.duration().ticks(),
                    ));
                }
            }
        };
        for (ts, payload) in packets {
            s.handle_rtp(*ts, Some(AudioCodec::Pcmu), payload);
            drain(&mut s);
        }
        s.finish();
        drain(&mut s);
        (out, s.stats())
    }

    #[test]
    fn reordered_and_duplicated_packets_give_the_same_press() {
        let packets = tone_packets(200);
        let (clean, _) = run(&packets);
        assert_eq!(clean.len(), 1);
        assert_eq!(clean[0].0, '9');
        let mut shuffled = packets.clone();
        for pair in shuffled.chunks_mut(2) {
            pair.reverse();
        }
        shuffled.insert(7, packets[6].clone());
        let (got, stats) = run(&shuffled);
        assert_eq!(got, clean);
        assert_eq!(stats.duplicates, 1);
        assert_eq!(stats.late, 0);
    }

    #[test]
    fn a_lost_packet_inside_a_long_tone_is_silence_and_a_late_one_is_dropped() {
        let mut packets = tone_packets(300);
        // Lose one 20 ms packet in the middle of the tone: 20 ms of silence splits nothing.
        packets.remove(10);
        let (got, stats) = run(&packets);
        assert_eq!(got.len(), 1, "{got:?}");
        assert_eq!(stats.concealed, 160);
        // A packet 200 ms late (beyond the 60 ms window) is dropped.
        let mut late = tone_packets(100);
        let p = late.remove(3);
        late.insert(15, p);
        let (_, stats) = run(&late);
        assert_eq!(stats.late, 1);
    }
}
