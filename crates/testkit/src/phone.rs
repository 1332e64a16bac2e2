//! A simulated caller: one RTP stream of PCMU audio every 20 ms, with key presses as in-band
//! tones, as RFC 4733 telephone-events, or both at once (as many SBCs send them).
//!
//! The phone writes datagrams with the time it sent them, from 0; what a network does to them
//! (loss, reordering, duplication) is up to the test, on the list.

use std::time::Duration;

use tonegate_media::g711::Law;
use tonegate_media::rfc4733::EventPayload;
use tonegate_media::Key;

use crate::{rtp, tone};

/// One datagram and when the phone sent it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sent {
    /// Time since the stream's first packet.
    pub at: Duration,
    /// The RTP packet.
    pub bytes: Vec<u8>,
}

/// How a key is sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Keying {
    /// Tones in the audio only.
    Inband,
    /// RFC 4733 events only, silence in the audio.
    Rfc4733,
    /// Both: the tone in the audio and events beside it.
    Both,
}

/// A caller's phone. See the module docs.
#[derive(Clone, Debug)]
pub struct Phone {
    /// RTP SSRC.
    pub ssrc: u32,
    /// Next sequence number.
    pub seq: u16,
    /// RTP timestamp of the next audio sample.
    pub ts: u32,
    /// Payload type of telephone-events (default 101).
    pub event_pt: u8,
    /// Level of in-band tones, per tone (default -10 dBm0).
    pub level_dbm0: f64,
    /// Datagrams so far.
    pub sent: Vec<Sent>,
    samples_sent: u64,
}

impl Phone {
    /// A phone sending as `ssrc`, with sequence numbers and timestamps starting at `seq` and
    /// `ts`.
    pub fn new(ssrc: u32, seq: u16, ts: u32) -> Phone {
        Phone {
            ssrc,
            seq,
            ts,
            event_pt: 101,
            level_dbm0: -10.0,
            sent: Vec::new(),
            samples_sent: 0,
        }
    }

    fn now(&self) -> Duration {
        Duration::from_micros(self.samples_sent * 125)
    }

    /// An RTP packet with the next sequence number.
    pub fn packet(&mut self, pt: u8, marker: bool, ts: u32, payload: &[u8]) -> Vec<u8> {
        let bytes = rtp::packet(pt, marker, self.seq, ts, self.ssrc, payload);
        self.seq = self.seq.wrapping_add(1);
        bytes
    }

    /// Sends `samples` as PCMU, 160 per packet (a short last packet is padded with silence).
    pub fn audio(&mut self, samples: &[i16]) {
        for chunk in samples.chunks(160) {
            let mut payload: Vec<u8> = chunk.iter().map(|&s| Law::Mu.encode(s)).collect();
            payload.resize(160, Law::Mu.encode(0));
            let at = self.now();
            let bytes = self.packet(0, false, self.ts, &payload);
            self.sent.push(Sent { at, bytes });
            self.ts = self.ts.wrapping_add(160);
            self.samples_sent += 160;
        }
    }

    /// Sends `ms` of silence.
    pub fn silence(&mut self, ms: u32) {
        self.audio(&vec![0; tone::samples_in(ms)]);
    }

    /// Presses `key` for `ms` (a multiple of 20), sent as `keying`. RFC 4733 events are sent
    /// as senders do: one update per 20 ms with the duration so far, the first with the
    /// marker bit, then three end packets.
    pub fn press(&mut self, key: Key, ms: u32, keying: Keying) {
        let packets = (ms / 20).max(1);
        let start_ts = self.ts;
        let tone = tone::dtmf(key, self.level_dbm0, tone::samples_in(packets * 20));
        for i in 0..packets {
            let audio = match keying {
                Keying::Rfc4733 => vec![0; 160],
                Keying::Inband | Keying::Both => tone[i as usize * 160..][..160].to_vec(),
            };
            self.audio(&audio);
            if keying != Keying::Inband {
                let event = EventPayload {
                    code: key.event_code(),
                    end: false,
                    volume: 10,
                    duration: ((i + 1) * 160) as u16,
                };
                self.event(i == 0, start_ts, event);
            }
        }
        if keying != Keying::Inband {
            for _ in 0..3 {
                let event = EventPayload {
                    code: key.event_code(),
                    end: true,
                    volume: 10,
                    duration: (packets * 160) as u16,
                };
                self.event(false, start_ts, event);
            }
        }
    }

    fn event(&mut self, marker: bool, ts: u32, event: EventPayload) {
        let at = self.now();
        let pt = self.event_pt;
        let bytes = self.packet(pt, marker, ts, &event.to_bytes());
        self.sent.push(Sent { at, bytes });
    }

    /// Presses each key of `keys` for `ms`, with `gap_ms` of silence after each.
    pub fn keys(&mut self, keys: &str, ms: u32, gap_ms: u32, keying: Keying) {
        for c in keys.chars() {
            let key = Key::from_char(c).expect("a DTMF key");
            self.press(key, ms, keying);
            self.silence(gap_ms);
        }
    }
}

/// The telephone-event in packet `i` (1 to 8) of a 100 ms press of event `code`, as the UDP
/// [`Caller`](crate::caller::Caller) and the benches send one: five updates 20 ms apart
/// (durations 160 to 800), then the end packet three times (RFC 4733 §2.5.1.4), volume
/// -10 dBm0. Every packet of the press carries the timestamp of its start.
pub fn press_event(code: u8, i: u16) -> EventPayload {
    EventPayload {
        code,
        end: i > 5,
        volume: 10,
        duration: i.min(5) * 160,
    }
}
