//! Listening to one RTP flow: the one path every key press takes, in a replay and in a live call.
//!
//! ```text
//!  RTP packet (now) ──► Listener ──► per SSRC: sequence extension, loss, payload types
//!                          │
//!                          ├──► rfc4733::Rfc4733Decoder ──Press──────────────┐
//!                          │      (one per flow, per SSRC inside; red)        ▼
//!                          └──► audio::AudioStream ──► inband ──Press──► dedup::PressMerger ──► ListenerEvent
//!                                 (PCMU/PCMA/L16, jitter, holes = silence)  (per SSRC: one press
//!                                                                            per tone sent both ways)
//! ```
//!
//! A flow is what one socket hears from one sender (a live call's RTP port) or one UDP
//! source/destination pair of a capture; each SSRC on it is a stream with its own timeline.
//! [`crate::replay::Replay`] runs a `Listener` per RTP flow it finds in a capture, with capture
//! time as arrival time; the gateway's call runs one for the caller's media with the socket's
//! arrival time. Both therefore hear the same presses, at the same media times, with the same
//! loss counts, for the same packets: a fix made here is made for both.
//!
//! Sans-IO, driven like the decoder it wraps: [`Listener::handle_rtp`] (or
//! [`Listener::handle_packet`]) with the arrival time, [`Listener::poll_event`],
//! [`Listener::poll_timeout`] / [`Listener::handle_timeout`] for presses whose end packets were
//! lost when media stops, and [`Listener::finish`] when the input ends.
//!
//! ```
//! use std::time::{Duration, Instant};
//! use rtp_types::RtpPacketBuilder;
//! use tonegate_media::listener::{Listener, ListenerConfig, ListenerEvent};
//! use tonegate_media::rfc4733::EventPayload;
//!
//! let mut listener = Listener::new(ListenerConfig::default());
//! let start = Instant::now();
//! // Key 5 as RFC 4733 events on payload type 101: three updates, then three end packets.
//! for i in 1..=6u16 {
//!     let event = EventPayload { code: 5, end: i > 3, volume: 10, duration: i.min(3) * 160 };
//!     let packet = RtpPacketBuilder::<&[u8], &[u8]>::new()
//!         .payload_type(101)
//!         .sequence_number(i)
//!         .timestamp(8000)
//!         .ssrc(7)
//!         .payload(&event.to_bytes()[..])
//!         .write_vec()
//!         .unwrap();
//!     listener.handle_packet(start + Duration::from_millis(20 * u64::from(i)), &packet).unwrap();
//! }
//! let mut keys = String::new();
//! while let Some(event) = listener.poll_event() {
//!     if let ListenerEvent::Press { press, .. } = event {
//!         keys.push(press.key().as_char()); // card data: only into the PCI zone
//!     }
//! }
//! assert_eq!(keys, "5");
//! assert_eq!(listener.stream(7).unwrap().packets, 6);
//! ```

use std::collections::{BTreeSet, VecDeque};
use std::time::Instant;

use rtp_types::RtpPacket;
use rustc_hash::FxHashMap;

use crate::audio::{AudioConfig, AudioStats, AudioStream};
use crate::dedup::PressMerger;
use crate::extend::SeqExtender;
use crate::inband::{InbandConfig, InbandDetector, InbandEvent};
use crate::key::{KeyPress, Source};
use crate::rfc4733::{DecoderConfig, DecoderEvent, Ending, Rfc4733Decoder, Rfc4733Error};
use crate::time::{MediaDuration, MediaTime};

/// What a listener listens for.
#[derive(Clone, Debug, Default)]
pub struct ListenerConfig {
    /// RFC 4733 decoder settings (telephone-event and red payload types, timeouts).
    pub decoder: DecoderConfig,
    /// Which payload types carry audio, the jitter window, and whether to decode audio for
    /// in-band detection at all.
    pub audio: AudioConfig,
    /// In-band detector thresholds and kernel.
    pub inband: InbandConfig,
}

/// What a listener reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ListenerEvent {
    /// A key press finished, heard as RFC 4733 events, as tones, or both (reported once). The
    /// key is card data, redacted in `Debug`.
    Press {
        /// The stream (RTP SSRC).
        ssrc: u32,
        /// The press, on the stream's media timeline.
        press: KeyPress,
        /// How its end was recognised.
        ending: Ending,
    },
    /// An RFC 4733 event that is not a key (code above 15). Never a digit.
    NonKeyEvent {
        /// The stream (RTP SSRC).
        ssrc: u32,
        /// The event code.
        code: u8,
        /// Start on the stream's media timeline.
        start: MediaTime,
        /// Duration.
        duration: MediaDuration,
    },
}

/// What was heard of one stream (one SSRC).
#[derive(Clone, Debug)]
pub struct StreamStats {
    /// When its first packet arrived.
    pub first_arrival: Instant,
    /// Payload types seen.
    pub payload_types: BTreeSet<u8>,
    /// RTP packets.
    pub packets: u64,
    /// Packets missing from the sequence-number range (RFC 3550 cumulative loss; duplicates
    /// can make it smaller, never negative).
    pub lost: u64,
    /// Packets the RFC 4733 decoder refused (short event payloads, damaged red payloads).
    pub refused: u64,
    /// Key presses reported whose first source was RFC 4733 events.
    pub presses_rfc4733: u64,
    /// Key presses reported heard as tones only.
    pub presses_inband: u64,
    /// Non-key events reported.
    pub non_key_events: u64,
    /// Presses heard both as events and as tones, reported once ([`crate::dedup`]).
    pub merged: u64,
    /// The audio path's counters (zero when no audio was decoded).
    pub audio: AudioStats,
}

impl StreamStats {
    /// Key presses reported, from either source.
    pub fn key_presses(&self) -> u64 {
        self.presses_rfc4733 + self.presses_inband
    }
}

/// Totals over a listener's streams, for metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ListenerTotals {
    /// RTP packets.
    pub packets: u64,
    /// Datagrams that were not RTP, and packets the decoder refused.
    pub refused: u64,
    /// Packets missing from the streams' sequence-number ranges.
    pub lost: u64,
    /// Key presses heard as RFC 4733 events.
    pub presses_rfc4733: u64,
    /// Key presses heard as tones only.
    pub presses_inband: u64,
}

#[derive(Debug)]
struct Stream {
    first_arrival: Instant,
    /// Payload types seen, one bit each (0-127).
    payload_types: u128,
    seq: SeqExtender,
    lowest: u64,
    packets: u64,
    lost: u64,
    refused: u64,
    presses_rfc4733: u64,
    presses_inband: u64,
    non_key_events: u64,
    audio: Option<AudioStream>,
    merger: PressMerger,
}

/// The listener of one RTP flow. See the module docs.
#[derive(Debug)]
pub struct Listener {
    decoder: Rfc4733Decoder,
    audio: AudioConfig,
    inband: InbandConfig,
    streams: FxHashMap<u32, Stream>,
    /// Datagrams that did not parse as RTP.
    not_rtp: u64,
    events: VecDeque<ListenerEvent>,
}

impl Listener {
    /// A listener with `config`.
    pub fn new(config: ListenerConfig) -> Listener {
        Listener {
            decoder: Rfc4733Decoder::new(config.decoder),
            audio: config.audio,
            inband: config.inband,
            streams: FxHashMap::default(),
            not_rtp: 0,
            events: VecDeque::new(),
        }
    }

    /// Adds telephone-event and red payload types (learnt from SDP after the listener started).
    pub fn add_payload_types(&mut self, event: &[u8], red: &[u8]) {
        self.decoder.add_payload_types(event, red);
    }

    /// Whether `payload_type` carries telephone-events, directly or inside RFC 2198 red.
    pub fn is_event_payload_type(&self, payload_type: u8) -> bool {
        let config = self.decoder.config();
        config.event_payload_types.contains(&payload_type)
            || config.red_payload_types.contains(&payload_type)
    }

    /// The audio settings.
    pub fn audio_config(&self) -> &AudioConfig {
        &self.audio
    }

    /// The in-band detector settings.
    pub fn inband_config(&self) -> &InbandConfig {
        &self.inband
    }

    /// Handles one UDP payload that arrived at `now`. A datagram that is not RTP is counted
    /// and refused, and changes nothing else.
    pub fn handle_packet(&mut self, now: Instant, datagram: &[u8]) -> Result<(), Rfc4733Error> {
        match RtpPacket::parse(datagram) {
            Ok(packet) => self.handle_rtp(now, &packet),
            Err(e) => {
                self.not_rtp += 1;
                Err(e.into())
            }
        }
    }

    /// Handles one RTP packet that arrived at `now`: counts it on its stream, decodes its
    /// telephone-events, and runs its audio through the stream's in-band detector. Presses
    /// that finished are ready from [`poll_event`](Self::poll_event). A packet the decoder
    /// refuses is counted and still heard as audio if it is audio.
    pub fn handle_rtp(&mut self, now: Instant, packet: &RtpPacket<'_>) -> Result<(), Rfc4733Error> {
        let ssrc = packet.ssrc();
        let stream = self.streams.entry(ssrc).or_insert_with(|| Stream {
            first_arrival: now,
            payload_types: 0,
            seq: SeqExtender::new(),
            lowest: u64::MAX,
            packets: 0,
            lost: 0,
            refused: 0,
            presses_rfc4733: 0,
            presses_inband: 0,
            non_key_events: 0,
            audio: None,
            merger: PressMerger::new(),
        });
        let seq = stream.seq.extend(u32::from(packet.sequence_number()));
        stream.lowest = stream.lowest.min(seq);
        stream.payload_types |= 1u128 << packet.payload_type();
        stream.packets += 1;
        let expected = stream.seq.highest().unwrap_or(seq) - stream.lowest + 1;
        stream.lost = expected.saturating_sub(stream.packets);
        let result = self.decoder.handle_rtp(now, packet);
        if result.is_err() {
            stream.refused += 1;
        }
        self.drain_decoder();
        if self.audio.enabled {
            let stream = self.streams.get_mut(&ssrc).expect("inserted above");
            let codec = self.audio.codec(packet.payload_type());
            if stream.audio.is_none() && codec.is_some() {
                let detector = InbandDetector::new(self.inband.clone());
                let mut audio = AudioStream::new(self.audio.jitter_window, detector);
                // Extend timestamps from the stream's first packet, exactly as the RFC 4733
                // decoder did, so that both sources share one timeline for the merger.
                if let Some(origin) = self.decoder.origin(ssrc) {
                    audio.handle_rtp(origin.ticks() as u32, None, &[]);
                }
                stream.audio = Some(audio);
            }
            if let Some(audio) = stream.audio.as_mut() {
                audio.handle_rtp(packet.timestamp(), codec, packet.payload());
                drain_audio(ssrc, stream, &mut self.events);
            }
        }
        result
    }

    /// When [`handle_timeout`](Self::handle_timeout) should be called: a press whose end
    /// packets were lost ends when media stops for the decoder's idle timeout.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.decoder.poll_timeout()
    }

    /// Fires the decoder's timeouts due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.decoder.handle_timeout(now);
        self.drain_decoder();
    }

    /// The input ended (end of capture, hang-up): reports every press still open.
    pub fn finish(&mut self) {
        self.decoder.finish();
        self.drain_decoder();
        for (&ssrc, stream) in self.streams.iter_mut() {
            if let Some(audio) = stream.audio.as_mut() {
                audio.finish();
                drain_audio(ssrc, stream, &mut self.events);
            }
        }
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<ListenerEvent> {
        self.events.pop_front()
    }

    /// The media time of `ssrc`'s first packet: the origin of its timeline.
    pub fn origin(&self, ssrc: u32) -> Option<MediaTime> {
        self.decoder.origin(ssrc)
    }

    /// The latest media time heard from `ssrc` (its highest extended timestamp).
    pub fn latest(&self, ssrc: u32) -> Option<MediaTime> {
        self.decoder.latest(ssrc)
    }

    /// When `ssrc`'s first packet arrived.
    pub fn first_arrival(&self, ssrc: u32) -> Option<Instant> {
        self.streams.get(&ssrc).map(|s| s.first_arrival)
    }

    /// The SSRCs heard, in no particular order.
    pub fn ssrcs(&self) -> impl Iterator<Item = u32> + '_ {
        self.streams.keys().copied()
    }

    /// What was heard of `ssrc`.
    pub fn stream(&self, ssrc: u32) -> Option<StreamStats> {
        let s = self.streams.get(&ssrc)?;
        Some(StreamStats {
            first_arrival: s.first_arrival,
            payload_types: (0..128u8)
                .filter(|pt| s.payload_types & (1u128 << pt) != 0)
                .collect(),
            packets: s.packets,
            lost: s.lost,
            refused: s.refused,
            presses_rfc4733: s.presses_rfc4733,
            presses_inband: s.presses_inband,
            non_key_events: s.non_key_events,
            merged: s.merger.merged(),
            audio: s.audio.as_ref().map(AudioStream::stats).unwrap_or_default(),
        })
    }

    /// Totals over every stream (cheap: no allocation).
    pub fn totals(&self) -> ListenerTotals {
        let mut totals = ListenerTotals {
            refused: self.not_rtp,
            ..ListenerTotals::default()
        };
        for s in self.streams.values() {
            totals.packets += s.packets;
            totals.refused += s.refused;
            totals.lost += s.lost;
            totals.presses_rfc4733 += s.presses_rfc4733;
            totals.presses_inband += s.presses_inband;
        }
        totals
    }

    /// Moves the decoder's events through the streams' mergers into the event queue.
    fn drain_decoder(&mut self) {
        while let Some(event) = self.decoder.poll_event() {
            match event {
                DecoderEvent::Press {
                    ssrc,
                    press,
                    ending,
                } => {
                    if let Some(stream) = self.streams.get_mut(&ssrc) {
                        offer(ssrc, stream, press, ending, &mut self.events);
                    }
                }
                DecoderEvent::NonKeyEvent {
                    ssrc,
                    code,
                    start,
                    duration,
                } => {
                    if let Some(stream) = self.streams.get_mut(&ssrc) {
                        stream.non_key_events += 1;
                    }
                    self.events.push_back(ListenerEvent::NonKeyEvent {
                        ssrc,
                        code,
                        start,
                        duration,
                    });
                }
                DecoderEvent::PressStarted { .. } => {}
            }
        }
    }
}

/// Moves a stream's in-band presses through its merger into the event queue.
fn drain_audio(ssrc: u32, stream: &mut Stream, events: &mut VecDeque<ListenerEvent>) {
    while let Some(event) = stream.audio.as_mut().and_then(AudioStream::poll_event) {
        if let InbandEvent::Press(heard) = event {
            offer(ssrc, stream, heard.press, heard.ending, events);
        }
    }
}

fn offer(
    ssrc: u32,
    stream: &mut Stream,
    press: KeyPress,
    ending: Ending,
    events: &mut VecDeque<ListenerEvent>,
) {
    let Some(press) = stream.merger.offer(press) else {
        return;
    };
    match press.source() {
        Source::Rfc4733 => stream.presses_rfc4733 += 1,
        Source::Inband => stream.presses_inband += 1,
    }
    events.push_back(ListenerEvent::Press {
        ssrc,
        press,
        ending,
    });
}
