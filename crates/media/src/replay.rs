//! Replaying a capture: finding RTP streams among UDP datagrams and decoding their key presses.
//!
//! Sans-IO like the rest of the crate: [`Replay`] is fed [`Frame`]s (from
//! [`crate::capture::CaptureReader`] or anywhere else) and yields [`ReplayPress`]es, then a
//! [`StreamSummary`] per stream (and the [`CaptureCounts`]). Capture timestamps stand in for
//! arrival time, so a replay is deterministic and runs as fast as the disk.
//!
//! A stream is one RTP SSRC on one UDP flow (source and destination address). Without
//! [`ReplayConfig::ports`], a flow is taken for RTP once two packets of one SSRC parse as RTP
//! version 2 with nearby sequence numbers and a payload type that is not RTCP (RFC 3550's
//! probation); with `ports`, every datagram to or from those ports is RTP. SIP messages in the
//! capture are read for SDP (`a=rtpmap:N telephone-event/...`), whose payload types are added
//! to the decoders. Each stream's PCMU/PCMA/L16 audio also runs through an in-band detector
//! ([`crate::audio`], [`crate::inband`]) unless [`AudioConfig::enabled`] is off, and both
//! sources' presses go through one [`PressMerger`] per stream.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rtp_types::RtpPacket;
use rustc_hash::FxHashMap;

use crate::audio::{AudioConfig, AudioStats, AudioStream};
use crate::capture::Frame;
use crate::dedup::PressMerger;
use crate::extend::SeqExtender;
use crate::inband::{InbandConfig, InbandDetector, InbandEvent};
use crate::key::KeyPress;
use crate::rfc4733::{DecoderConfig, DecoderEvent, Ending, Rfc4733Decoder};
use crate::sdp::SdpPayloadTypes;
use crate::time::Millis;
use crate::udp::{udp_datagram, Datagram};

/// Replay settings.
#[derive(Clone, Debug, Default)]
pub struct ReplayConfig {
    /// Decoder settings (payload types, timeouts).
    pub decoder: DecoderConfig,
    /// UDP ports that carry RTP. Empty: find RTP flows heuristically.
    pub ports: Vec<u16>,
    /// Audio payload types and in-band detection (on by default for PCMU and PCMA).
    pub audio: AudioConfig,
    /// In-band detector thresholds.
    pub inband: InbandConfig,
}

/// One RTP stream: an SSRC on a UDP flow.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StreamId {
    /// Sender.
    pub source: SocketAddr,
    /// Receiver.
    pub destination: SocketAddr,
    /// RTP synchronisation source.
    pub ssrc: u32,
}

impl std::fmt::Display for StreamId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}->{}/0x{:08x}",
            self.source, self.destination, self.ssrc
        )
    }
}

/// A key press found in a capture.
#[derive(Clone, Debug)]
pub struct ReplayPress {
    /// The stream it was heard on.
    pub stream: StreamId,
    /// The press (key redacted in `Debug`).
    pub press: KeyPress,
    /// Start in capture time: the offset of the stream's first packet from the capture's first
    /// frame, plus the press start's offset on the stream's media timeline.
    pub start: Millis,
    /// How its end was recognised.
    pub ending: Ending,
}

/// What was seen of one stream.
#[derive(Clone, Debug)]
pub struct StreamSummary {
    /// The stream.
    pub id: StreamId,
    /// Payload types seen.
    pub payload_types: BTreeSet<u8>,
    /// RTP packets.
    pub packets: u64,
    /// Packets missing from the sequence-number range (RFC 3550 cumulative loss; duplicates
    /// can make it smaller, never negative).
    pub lost: u64,
    /// Key presses reported.
    pub key_presses: u64,
    /// Non-key events (codes above 15) reported.
    pub non_key_events: u64,
    /// Packets the decoder refused (short event payloads, damaged red payloads).
    pub refused: u64,
    /// Presses heard both as RFC 4733 events and in-band, reported once (see
    /// [`crate::dedup`]).
    pub merged: u64,
    /// The audio path's counters (zero when no audio was decoded).
    pub audio: AudioStats,
    /// Capture time of its first packet, relative to the capture's first frame.
    pub first_seen: Millis,
}

/// Counts over the whole capture.
#[derive(Clone, Debug, Default)]
pub struct CaptureCounts {
    /// Frames read.
    pub frames: u64,
    /// UDP datagrams among them.
    pub udp: u64,
    /// Frames whose headers did not parse or were IP fragments.
    pub unparsed: u64,
    /// SIP messages with SDP whose payload types were used.
    pub sdp_found: u64,
}

#[derive(Debug)]
struct Stream {
    summary: StreamSummary,
    /// Payload types seen, one bit each (0-127), turned into the summary's set at the end.
    payload_types: u128,
    seq: SeqExtender,
    lowest: u64,
    audio: Option<AudioStream>,
    merger: PressMerger,
}

#[derive(Debug)]
struct Flow {
    key: (SocketAddr, SocketAddr),
    decoder: Rfc4733Decoder,
    /// The decoder's `poll_timeout`, kept here so that checking for due timeouts on every
    /// frame costs a comparison per flow, not a walk over every SSRC.
    deadline: Option<Instant>,
    streams: FxHashMap<u32, Stream>,
    /// A first packet held until a second one confirms the flow is RTP.
    probation: Option<(Vec<u8>, Duration)>,
    accepted: bool,
    audio: AudioConfig,
    inband: InbandConfig,
    /// The stream of the last packet, whose in-band events `collect` drains.
    touched: Option<u32>,
}

/// The sans-IO capture replayer.
#[derive(Debug)]
pub struct Replay {
    config: ReplayConfig,
    base: Instant,
    first_frame: Option<Duration>,
    flows: FxHashMap<(SocketAddr, SocketAddr), Flow>,
    /// No flow has a timeout due before this (it may be earlier than the real earliest).
    next_deadline: Option<Instant>,
    sdp: SdpPayloadTypes,
    presses: Vec<ReplayPress>,
    counts: CaptureCounts,
}

impl Replay {
    /// A replayer with `config`.
    pub fn new(config: ReplayConfig) -> Replay {
        Replay {
            config,
            base: Instant::now(),
            first_frame: None,
            flows: FxHashMap::default(),
            next_deadline: None,
            sdp: SdpPayloadTypes::default(),
            presses: Vec::new(),
            counts: CaptureCounts::default(),
        }
    }

    /// Handles one captured frame.
    pub fn handle_frame(&mut self, frame: &Frame<'_>) {
        self.counts.frames += 1;
        let first = *self.first_frame.get_or_insert(frame.timestamp);
        let arrival = frame.timestamp.saturating_sub(first);
        self.expire(arrival);
        match udp_datagram(frame.link, frame.data) {
            Ok(Some(datagram)) => {
                self.counts.udp += 1;
                self.handle_datagram(arrival, &datagram);
            }
            Ok(None) => {}
            Err(_) => self.counts.unparsed += 1,
        }
    }

    /// Takes the key presses found so far, in the order they finished.
    pub fn drain_presses(&mut self) -> std::vec::Drain<'_, ReplayPress> {
        self.presses.drain(..)
    }

    /// Ends the replay: reports every press still open, and returns the per-stream summary
    /// (sorted by first appearance) with the capture counts.
    pub fn finish(&mut self) -> (Vec<StreamSummary>, CaptureCounts) {
        for flow in self.flows.values_mut() {
            flow.decoder.finish();
            flow.collect(&mut self.presses);
            let ssrcs: Vec<u32> = flow.streams.keys().copied().collect();
            for ssrc in ssrcs {
                if let Some(audio) = flow.streams.get_mut(&ssrc).and_then(|s| s.audio.as_mut()) {
                    audio.finish();
                }
                flow.touched = Some(ssrc);
                flow.collect(&mut self.presses);
            }
        }
        let mut streams: Vec<StreamSummary> = self
            .flows
            .values()
            .flat_map(|f| f.streams.values())
            .map(|s| {
                let mut summary = s.summary.clone();
                summary.merged = s.merger.merged();
                summary.audio = s.audio.as_ref().map(AudioStream::stats).unwrap_or_default();
                summary.payload_types = (0..128u8)
                    .filter(|pt| s.payload_types & (1u128 << pt) != 0)
                    .collect();
                summary
            })
            .collect();
        streams.sort_by(|a, b| {
            a.first_seen
                .0
                .total_cmp(&b.first_seen.0)
                .then(a.id.cmp(&b.id))
        });
        (streams, self.counts.clone())
    }

    fn expire(&mut self, arrival: Duration) {
        let now = self.base + arrival;
        if self.next_deadline.is_none_or(|t| t > now) {
            return;
        }
        let mut next = None;
        for flow in self.flows.values_mut() {
            if flow.deadline.is_some_and(|t| t <= now) {
                flow.decoder.handle_timeout(now);
                flow.collect(&mut self.presses);
            }
            next = earliest(next, flow.deadline);
        }
        self.next_deadline = next;
    }

    fn handle_datagram(&mut self, arrival: Duration, datagram: &Datagram<'_>) {
        let key = (datagram.source, datagram.destination);
        let by_port = !self.config.ports.is_empty();
        if by_port
            && !self.config.ports.contains(&datagram.source.port())
            && !self.config.ports.contains(&datagram.destination.port())
        {
            return;
        }
        // One hash lookup for the common case: a flow already known.
        let known = match self.flows.get_mut(&key) {
            Some(flow) if flow.accepted => Some(flow),
            _ => None,
        };
        if let Some(flow) = known {
            flow.rtp(self.base + arrival, arrival, datagram.payload);
            flow.collect(&mut self.presses);
            self.next_deadline = earliest(self.next_deadline, flow.deadline);
            return;
        }
        if !self.flows.contains_key(&key) {
            if !looks_like_rtp(datagram.payload) {
                self.look_for_sdp(datagram.payload);
                return;
            }
            let mut decoder = Rfc4733Decoder::new(self.config.decoder.clone());
            decoder.add_payload_types(&self.sdp_event_types(), &self.sdp.red);
            self.flows.insert(
                key,
                Flow {
                    key,
                    decoder,
                    deadline: None,
                    streams: FxHashMap::default(),
                    probation: None,
                    accepted: by_port,
                    audio: self.config.audio.clone(),
                    inband: self.config.inband.clone(),
                    touched: None,
                },
            );
        }
        let flow = self.flows.get_mut(&key).expect("inserted above");
        let now = self.base + arrival;
        if !flow.accepted {
            if !looks_like_rtp(datagram.payload) {
                return;
            }
            match flow.probation.take() {
                Some((held, held_arrival)) if confirms(&held, datagram.payload) => {
                    flow.accepted = true;
                    flow.rtp(self.base + held_arrival, held_arrival, &held);
                }
                _ => {
                    flow.probation = Some((datagram.payload.to_vec(), arrival));
                    return;
                }
            }
        }
        flow.rtp(now, arrival, datagram.payload);
        flow.collect(&mut self.presses);
        self.next_deadline = earliest(self.next_deadline, flow.deadline);
    }
}

fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

impl Flow {
    fn rtp(&mut self, now: Instant, arrival: Duration, payload: &[u8]) {
        let Ok(packet) = RtpPacket::parse(payload) else {
            return;
        };
        let ssrc = packet.ssrc();
        let key = self.key;
        let stream = self.streams.entry(ssrc).or_insert_with(|| Stream {
            summary: StreamSummary {
                id: StreamId {
                    source: key.0,
                    destination: key.1,
                    ssrc,
                },
                payload_types: BTreeSet::new(),
                packets: 0,
                lost: 0,
                key_presses: 0,
                non_key_events: 0,
                refused: 0,
                merged: 0,
                audio: AudioStats::default(),
                first_seen: Millis(arrival.as_secs_f64() * 1000.0),
            },
            payload_types: 0,
            seq: SeqExtender::new(),
            lowest: u64::MAX,
            audio: None,
            merger: PressMerger::new(),
        });
        let seq = stream.seq.extend(u32::from(packet.sequence_number()));
        stream.lowest = stream.lowest.min(seq);
        stream.payload_types |= 1u128 << packet.payload_type();
        let summary = &mut stream.summary;
        summary.packets += 1;
        let expected = stream.seq.highest().unwrap_or(seq) - stream.lowest + 1;
        summary.lost = expected.saturating_sub(summary.packets);
        if self.decoder.handle_rtp(now, &packet).is_err() {
            summary.refused += 1;
        }
        if self.audio.enabled {
            let codec = self.audio.codec(packet.payload_type());
            if stream.audio.is_none() && codec.is_some() {
                let detector = InbandDetector::new(self.inband.clone());
                let mut audio = AudioStream::new(self.audio.jitter_window, detector);
                // Extend from the stream's first packet, exactly as the RFC 4733 decoder did.
                if let Some(origin) = self.decoder.origin(ssrc) {
                    audio.handle_rtp(origin.ticks() as u32, None, &[]);
                }
                stream.audio = Some(audio);
            }
            if let Some(audio) = stream.audio.as_mut() {
                audio.handle_rtp(packet.timestamp(), codec, packet.payload());
                self.touched = Some(ssrc);
            }
        }
    }

    /// Moves the decoder's events into `presses` and the stream counters.
    fn collect(&mut self, presses: &mut Vec<ReplayPress>) {
        self.deadline = self.decoder.poll_timeout();
        while let Some(event) = self.decoder.poll_event() {
            match event {
                DecoderEvent::Press {
                    ssrc,
                    press,
                    ending,
                } => {
                    let origin = self.decoder.origin(ssrc).expect("press from a known ssrc");
                    let Some(stream) = self.streams.get_mut(&ssrc) else {
                        continue;
                    };
                    let Some(press) = stream.merger.offer(press) else {
                        continue;
                    };
                    stream.summary.key_presses += 1;
                    let offset = press.start().millis_from(origin);
                    presses.push(ReplayPress {
                        stream: stream.summary.id,
                        start: Millis(stream.summary.first_seen.0 + offset.0),
                        press,
                        ending,
                    });
                }
                DecoderEvent::NonKeyEvent { ssrc, .. } => {
                    if let Some(stream) = self.streams.get_mut(&ssrc) {
                        stream.summary.non_key_events += 1;
                    }
                }
                DecoderEvent::PressStarted { .. } => {}
            }
        }
        let Some(ssrc) = self.touched.take() else {
            return;
        };
        let origin = self.decoder.origin(ssrc);
        let Some(stream) = self.streams.get_mut(&ssrc) else {
            return;
        };
        let (Some(audio), Some(origin)) = (stream.audio.as_mut(), origin) else {
            return;
        };
        while let Some(event) = audio.poll_event() {
            let InbandEvent::Press(heard) = event else {
                continue;
            };
            let Some(press) = stream.merger.offer(heard.press) else {
                continue;
            };
            stream.summary.key_presses += 1;
            let offset = press.start().millis_from(origin);
            presses.push(ReplayPress {
                stream: stream.summary.id,
                start: Millis(stream.summary.first_seen.0 + offset.0),
                press,
                ending: heard.ending,
            });
        }
    }
}

impl Replay {
    fn sdp_event_types(&self) -> Vec<u8> {
        self.sdp.telephone_event.iter().map(|&(pt, _)| pt).collect()
    }

    fn look_for_sdp(&mut self, payload: &[u8]) {
        let Ok(text) = std::str::from_utf8(payload) else {
            return;
        };
        let is_sip = text.starts_with("SIP/2.0")
            || text
                .split_once(' ')
                .is_some_and(|(method, _)| method.chars().all(|c| c.is_ascii_uppercase()));
        if !is_sip || !text.contains("a=rtpmap:") {
            return;
        }
        let found = SdpPayloadTypes::from_sdp(text);
        if found.is_empty() {
            return;
        }
        self.counts.sdp_found += 1;
        for (pt, rate) in found.telephone_event {
            if !self.sdp.telephone_event.iter().any(|&(p, _)| p == pt) {
                self.sdp.telephone_event.push((pt, rate));
            }
        }
        for pt in found.red {
            if !self.sdp.red.contains(&pt) {
                self.sdp.red.push(pt);
            }
        }
        let events = self.sdp_event_types();
        for flow in self.flows.values_mut() {
            flow.decoder.add_payload_types(&events, &self.sdp.red);
        }
    }
}

/// RTP version 2, a full header, and a payload type that is not RTCP (RFC 5761: RTCP packet
/// types 200-204 read as marker + payload type 72-76).
fn looks_like_rtp(payload: &[u8]) -> bool {
    payload.len() >= 12 && payload[0] >> 6 == 2 && !(72..=76).contains(&(payload[1] & 0x7F))
}

/// A second packet confirms a flow as RTP when it has the same SSRC and a sequence number just
/// after the first (RFC 3550 A.1 probation, with room for a little loss and reordering).
fn confirms(held: &[u8], next: &[u8]) -> bool {
    let (Ok(a), Ok(b)) = (RtpPacket::parse(held), RtpPacket::parse(next)) else {
        return false;
    };
    let step = b.sequence_number().wrapping_sub(a.sequence_number());
    a.ssrc() == b.ssrc() && (step <= 16 || step >= u16::MAX - 16)
}
