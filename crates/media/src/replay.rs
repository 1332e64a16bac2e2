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
//! to the decoders. Each RTP flow is heard by a [`Listener`], the same listening path a live
//! call runs ([`crate::listener`]): RFC 4733 events, each stream's PCMU/PCMA/L16 audio through
//! an in-band detector unless [`AudioConfig::enabled`] is off, and one press merger per stream.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rtp_types::RtpPacket;
use rustc_hash::FxHashMap;

use crate::audio::{AudioConfig, AudioStats};
use crate::capture::Frame;
use crate::inband::InbandConfig;
use crate::key::KeyPress;
use crate::listener::{Listener, ListenerConfig, ListenerEvent};
use crate::rfc4733::{DecoderConfig, Ending};
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
struct Flow {
    key: (SocketAddr, SocketAddr),
    /// The one listening path, the same a live call runs ([`crate::listener`]).
    listener: Listener,
    /// The listener's `poll_timeout`, kept here so that checking for due timeouts on every
    /// frame costs a comparison per flow.
    deadline: Option<Instant>,
    /// A first packet held until a second one confirms the flow is RTP.
    probation: Option<(Vec<u8>, Duration)>,
    accepted: bool,
}

/// The sans-IO capture replayer.
#[derive(Debug)]
pub struct Replay {
    config: ReplayConfig,
    /// The arrival time of the capture's first frame; later frames arrive at their capture
    /// timestamp's offset from it.
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
    /// A replayer with `config`. The capture's first frame arrives at `base` (any instant:
    /// the caller's clock, read once); every later frame at `base` plus its capture-time
    /// offset, so the result does not depend on when the replay runs.
    pub fn new(config: ReplayConfig, base: Instant) -> Replay {
        Replay {
            config,
            base,
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
        let base = self.base;
        for flow in self.flows.values_mut() {
            flow.listener.finish();
            flow.collect(base, &mut self.presses);
        }
        let mut streams: Vec<StreamSummary> = self
            .flows
            .values()
            .flat_map(|f| f.summaries(base))
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
                flow.listener.handle_timeout(now);
                flow.collect(self.base, &mut self.presses);
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
            flow.rtp(self.base + arrival, datagram.payload);
            flow.collect(self.base, &mut self.presses);
            self.next_deadline = earliest(self.next_deadline, flow.deadline);
            return;
        }
        if !self.flows.contains_key(&key) {
            if !looks_like_rtp(datagram.payload) {
                self.look_for_sdp(datagram.payload);
                return;
            }
            let mut listener = Listener::new(ListenerConfig {
                decoder: self.config.decoder.clone(),
                audio: self.config.audio.clone(),
                inband: self.config.inband.clone(),
            });
            listener.add_payload_types(&self.sdp_event_types(), &self.sdp.red);
            self.flows.insert(
                key,
                Flow {
                    key,
                    listener,
                    deadline: None,
                    probation: None,
                    accepted: by_port,
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
                    flow.rtp(self.base + held_arrival, &held);
                }
                _ => {
                    flow.probation = Some((datagram.payload.to_vec(), arrival));
                    return;
                }
            }
        }
        flow.rtp(now, datagram.payload);
        flow.collect(self.base, &mut self.presses);
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
    fn rtp(&mut self, now: Instant, payload: &[u8]) {
        // Not RTP after all (a flow is accepted on two packets): skipped, as before the flow
        // was found.
        let _ = self.listener.handle_packet(now, payload);
    }

    /// Moves the listener's presses into `presses`, placed in capture time.
    fn collect(&mut self, base: Instant, presses: &mut Vec<ReplayPress>) {
        self.deadline = self.listener.poll_timeout();
        while let Some(event) = self.listener.poll_event() {
            let ListenerEvent::Press {
                ssrc,
                press,
                ending,
            } = event
            else {
                continue;
            };
            let (Some(origin), Some(first)) = (
                self.listener.origin(ssrc),
                self.listener.first_arrival(ssrc),
            ) else {
                continue;
            };
            let offset = press.start().millis_from(origin);
            presses.push(ReplayPress {
                stream: self.stream_id(ssrc),
                start: Millis(capture_millis(base, first).0 + offset.0),
                press,
                ending,
            });
        }
    }

    fn stream_id(&self, ssrc: u32) -> StreamId {
        StreamId {
            source: self.key.0,
            destination: self.key.1,
            ssrc,
        }
    }

    fn summaries(&self, base: Instant) -> impl Iterator<Item = StreamSummary> + '_ {
        self.listener.ssrcs().filter_map(move |ssrc| {
            let s = self.listener.stream(ssrc)?;
            Some(StreamSummary {
                id: self.stream_id(ssrc),
                key_presses: s.key_presses(),
                payload_types: s.payload_types,
                packets: s.packets,
                lost: s.lost,
                non_key_events: s.non_key_events,
                refused: s.refused,
                merged: s.merged,
                audio: s.audio,
                first_seen: capture_millis(base, s.first_arrival),
            })
        })
    }
}

/// Capture time of `arrival`: its offset from the capture's first frame.
fn capture_millis(base: Instant, arrival: Instant) -> Millis {
    Millis(arrival.saturating_duration_since(base).as_secs_f64() * 1000.0)
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
            flow.listener.add_payload_types(&events, &self.sdp.red);
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
