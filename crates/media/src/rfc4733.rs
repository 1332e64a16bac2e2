//! RFC 4733 telephone-events: the event payload and the sans-IO key-press decoder.
//!
//! Every packet of one event carries the event's start as its RTP timestamp and the time held
//! so far as `duration`; the last one has the end bit set and is usually sent three times.
//! Real senders bend these rules in every direction, so the decoder identifies a key press by
//! its event code and by the span of media time it covers, never by the marker bit, never by
//! a single end packet, and never by one exact timestamp:
//!
//! - a packet whose code matches an open press and whose timestamp falls inside the media time
//!   that press already covers (plus [`DecoderConfig::continuation_gap`]) continues it. This
//!   one rule absorbs duplicates, reordering, senders that move the timestamp on every packet,
//!   and long events split into segments (RFC 4733 §2.5.1.3);
//! - a packet matching a press that has already been reported is a late copy (retransmitted
//!   end packets, RFC 2198 redundancy, reordering) and is dropped;
//! - a press whose end packets are lost ends when the next event starts, when the stream's
//!   media time runs [`DecoderConfig::end_timeout`] past it, or, if media stops, after
//!   [`DecoderConfig::idle_timeout`] of wall-clock time (driven by [`Rfc4733Decoder::handle_timeout`]);
//! - a 16-bit `duration` that wraps while the timestamp stays is unwrapped;
//! - packets with `duration` 0 are ignored; event codes above 15 are reported as
//!   [`DecoderEvent::NonKeyEvent`], never as keys.
//!
//! ```
//! use std::time::Instant;
//! use tonegate_media::rfc4733::{DecoderConfig, DecoderEvent, Rfc4733Decoder};
//!
//! let mut decoder = Rfc4733Decoder::new(DecoderConfig::default());
//! let now = Instant::now();
//! // Key 5 held for 100 ms (800 samples), end packet sent once.
//! let packet = [0x80, 101, 0, 1, 0, 0, 0x10, 0, 0, 0, 0, 7, 5, 0x8a, 0x03, 0x20];
//! decoder.handle_packet(now, &packet).unwrap();
//! let mut keys = String::new();
//! while let Some(event) = decoder.poll_event() {
//!     if let DecoderEvent::Press { press, .. } = event {
//!         keys.push(press.key().as_char());
//!         assert_eq!(press.duration().as_millis().0, 100.0);
//!     }
//! }
//! assert_eq!(keys, "5");
//! ```

use std::collections::VecDeque;
use std::fmt;
use std::time::{Duration, Instant};

use rtp_types::{RtpPacket, RtpParseError};
use rustc_hash::FxHashMap;
use thiserror::Error;
use zeroize::Zeroize;

use crate::extend::{SeqExtender, TimestampExtender};
use crate::key::{Dbm0, Key, KeyPress, Source};
use crate::red::{unwrap_red, RedError};
use crate::time::{ClockRate, MediaDuration, MediaTime, Millis};

/// The default telephone-event payload type (the common choice; SDP should say).
pub const DEFAULT_EVENT_PAYLOAD_TYPE: u8 = 101;

/// One telephone-event block (RFC 4733 §2.3).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct EventPayload {
    /// Event code: 0-15 are DTMF keys, above are other events.
    pub code: u8,
    /// The end bit: this is (a retransmission of) the last packet of the event.
    pub end: bool,
    /// Volume, 0 to 63, meaning 0 to -63 dBm0.
    pub volume: u8,
    /// Time held so far, in ticks of the event clock.
    pub duration: u16,
}

impl std::fmt::Debug for EventPayload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The code is a card digit during a payment: keep it out of debug output.
        f.debug_struct("EventPayload")
            .field("code", &"<redacted>")
            .field("end", &self.end)
            .field("volume", &self.volume)
            .field("duration", &self.duration)
            .finish()
    }
}

impl EventPayload {
    /// Size of one event block.
    pub const LEN: usize = 4;

    /// Parses the first event block of a telephone-event payload. Bytes after the first block
    /// are ignored (RFC 4733 carries one event per packet unless RFC 2198 is used).
    pub fn parse(payload: &[u8]) -> Result<EventPayload, Rfc4733Error> {
        let Some(b) = payload.get(..Self::LEN) else {
            return Err(Rfc4733Error::ShortPayload { len: payload.len() });
        };
        Ok(EventPayload {
            code: b[0],
            end: b[1] & 0x80 != 0,
            volume: b[1] & 0x3F,
            duration: u16::from_be_bytes([b[2], b[3]]),
        })
    }

    /// The four bytes of this block.
    pub fn to_bytes(self) -> [u8; 4] {
        let d = self.duration.to_be_bytes();
        [
            self.code,
            (u8::from(self.end) << 7) | (self.volume & 0x3F),
            d[0],
            d[1],
        ]
    }
}

/// Why a packet could not be used. The decoder's state is unchanged by a refused packet.
#[derive(Debug, Error)]
pub enum Rfc4733Error {
    /// Not an RTP packet.
    #[error("not a valid RTP packet: {0}")]
    Rtp(#[from] RtpParseError),
    /// A telephone-event payload shorter than one event block.
    #[error("telephone-event payload is {len} bytes; an event block needs 4")]
    ShortPayload {
        /// Payload length in bytes.
        len: usize,
    },
    /// A damaged RFC 2198 payload.
    #[error(transparent)]
    Red(#[from] RedError),
}

/// Decoder settings. The defaults suit 8 kHz telephony.
#[derive(Clone, Debug)]
pub struct DecoderConfig {
    /// Payload types that carry telephone-events (default: 101). Take them from SDP
    /// (`a=rtpmap:N telephone-event/8000`) when there is one; see [`crate::sdp`].
    pub event_payload_types: Vec<u8>,
    /// Payload types that carry RFC 2198 redundancy (`a=rtpmap:N red/8000`); none by default.
    pub red_payload_types: Vec<u8>,
    /// Clock rate of the event timeline (from the rtpmap; default 8000).
    pub clock_rate: ClockRate,
    /// A press whose end packets never arrive ends when other packets of its stream have
    /// moved media time this far past the end it reached (default 250 ms; senders refresh an
    /// event at least every 50 ms).
    pub end_timeout: Millis,
    /// Wall-clock fallback when media stops altogether: a press with no packet for this long
    /// ends (default 1 s).
    pub idle_timeout: Duration,
    /// How far past the media time a press has covered a packet may start and still continue
    /// it (default 25 ms: one lost 20 ms packet of a sender that moves its timestamp, and less
    /// than the 40 ms minimum pause between two presses of ITU-T Q.24).
    pub continuation_gap: Millis,
}

impl Default for DecoderConfig {
    fn default() -> Self {
        DecoderConfig {
            event_payload_types: vec![DEFAULT_EVENT_PAYLOAD_TYPE],
            red_payload_types: Vec::new(),
            clock_rate: ClockRate::NARROWBAND,
            end_timeout: Millis(250.0),
            idle_timeout: Duration::from_secs(1),
            continuation_gap: Millis(25.0),
        }
    }
}

/// Why a press was considered finished.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ending {
    /// An end packet arrived.
    EndPacket,
    /// Its end packets were lost; another event started after it.
    NextEvent,
    /// Its end packets were lost; media time moved past [`DecoderConfig::end_timeout`].
    MediaTimeout,
    /// No packet for [`DecoderConfig::idle_timeout`] of wall-clock time.
    IdleTimeout,
    /// The input ended ([`Rfc4733Decoder::finish`]).
    EndOfInput,
    /// In-band only: the tone stopped (three 10 ms blocks without it; see [`crate::inband`]).
    ToneEnd,
}

/// What the decoder reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DecoderEvent {
    /// A key went down (first packet of a press). Its key is card data, redacted in `Debug`.
    PressStarted {
        /// Stream (RTP SSRC).
        ssrc: u32,
        /// The key.
        key: Key,
        /// Start of the press on the stream's media timeline.
        start: MediaTime,
    },
    /// A key press finished.
    Press {
        /// Stream (RTP SSRC).
        ssrc: u32,
        /// The press, with source [`Source::Rfc4733`].
        press: KeyPress,
        /// How its end was recognised.
        ending: Ending,
    },
    /// An event that is not a key (code above 15: flash, tones, ...). Never a digit.
    NonKeyEvent {
        /// Stream (RTP SSRC).
        ssrc: u32,
        /// The RFC 4733 event code.
        code: u8,
        /// Start on the stream's media timeline.
        start: MediaTime,
        /// Duration.
        duration: MediaDuration,
    },
}

/// Counters, for reports and metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DecoderStats {
    /// RTP packets handled.
    pub packets: u64,
    /// Event blocks seen (primary and redundant).
    pub event_blocks: u64,
    /// Event blocks with duration 0, ignored.
    pub zero_duration: u64,
    /// Event blocks that repeated a press already reported, or came from before the latest
    /// press and could not be placed.
    pub late_copies: u64,
    /// Redundant (RFC 2198) event blocks too short to parse, skipped.
    pub skipped_blocks: u64,
}

/// Presses remembered after they are reported, to recognise late copies.
const RECENT: usize = 8;

/// A reported press, remembered to recognise late copies. No `Debug`: it holds a key.
#[derive(Clone, Copy)]
struct Finished {
    code: u8,
    start: u64,
    end: u64,
}

/// The event being heard. No `Debug`: it holds a key.
#[derive(Clone, Copy)]
struct OpenEvent {
    code: u8,
    start: u64,
    /// End of the media time covered so far.
    end: u64,
    /// Timestamp of the newest segment (RFC 4733 long events), and the largest unwrapped
    /// duration seen with it.
    segment: u64,
    segment_duration: u64,
    volume: u8,
    last_arrival: Instant,
}

struct SsrcState {
    seq: SeqExtender,
    ts: TimestampExtender,
    /// Extended timestamp of the first packet seen: the origin of the stream's timeline.
    origin: u64,
    /// Start of the newest press seen: event blocks from before it that match nothing
    /// remembered cannot be placed in key order and are dropped.
    latest_start: Option<u64>,
    open: Option<OpenEvent>,
    recent: VecDeque<Finished>,
}

impl SsrcState {
    /// Overwrites the open event's code before the event is closed.
    fn forget_open(&mut self) {
        if let Some(open) = self.open.as_mut() {
            open.code.zeroize();
        }
        self.open = None;
    }
}

impl Drop for SsrcState {
    /// The remembered event codes are keys: overwritten, not just freed.
    fn drop(&mut self) {
        self.forget_open();
        for finished in self.recent.iter_mut() {
            finished.code.zeroize();
        }
    }
}

/// The sans-IO RFC 4733 decoder, for any number of SSRCs: feed it RTP packets with their
/// arrival time, drain [`DecoderEvent`]s with [`poll_event`](Self::poll_event), and drive
/// [`handle_timeout`](Self::handle_timeout) at [`poll_timeout`](Self::poll_timeout).
///
/// Its `Debug` shows settings and counters, never an event code: a trace of the decoder would
/// otherwise print the open key and the last keys it remembers. The codes it remembers are
/// overwritten when they are forgotten and when the decoder is dropped.
pub struct Rfc4733Decoder {
    config: DecoderConfig,
    end_timeout: u64,
    gap: u64,
    streams: FxHashMap<u32, SsrcState>,
    events: VecDeque<DecoderEvent>,
    stats: DecoderStats,
}

impl fmt::Debug for Rfc4733Decoder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Rfc4733Decoder")
            .field("config", &self.config)
            .field("streams", &self.streams.len())
            .field(
                "open_events",
                &self.streams.values().filter(|s| s.open.is_some()).count(),
            )
            .field("pending_events", &self.events.len())
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl Rfc4733Decoder {
    /// A decoder with `config`.
    pub fn new(config: DecoderConfig) -> Rfc4733Decoder {
        Rfc4733Decoder {
            end_timeout: config.clock_rate.ticks_in(config.end_timeout),
            gap: config.clock_rate.ticks_in(config.continuation_gap),
            config,
            streams: FxHashMap::default(),
            events: VecDeque::new(),
            stats: DecoderStats::default(),
        }
    }

    /// The settings in use.
    pub fn config(&self) -> &DecoderConfig {
        &self.config
    }

    /// Counters so far.
    pub fn stats(&self) -> DecoderStats {
        self.stats
    }

    /// The media time of the first packet seen from `ssrc`: the origin of its timeline.
    pub fn origin(&self, ssrc: u32) -> Option<MediaTime> {
        self.streams
            .get(&ssrc)
            .map(|s| MediaTime::new(s.origin, self.config.clock_rate))
    }

    /// The latest media time seen from `ssrc` (its highest extended timestamp).
    pub fn latest(&self, ssrc: u32) -> Option<MediaTime> {
        self.streams
            .get(&ssrc)
            .and_then(|s| s.ts.highest())
            .map(|t| MediaTime::new(t, self.config.clock_rate))
    }

    /// Adds telephone-event and red payload types (learnt from SDP after the decoder started).
    pub fn add_payload_types(&mut self, event: &[u8], red: &[u8]) {
        for &pt in event {
            if !self.config.event_payload_types.contains(&pt) {
                self.config.event_payload_types.push(pt);
            }
        }
        for &pt in red {
            if !self.config.red_payload_types.contains(&pt) {
                self.config.red_payload_types.push(pt);
            }
        }
    }

    /// Parses and handles one RTP packet that arrived at `now`.
    pub fn handle_packet(&mut self, now: Instant, packet: &[u8]) -> Result<(), Rfc4733Error> {
        let packet = RtpPacket::parse(packet)?;
        self.handle_rtp(now, &packet)
    }

    /// Handles one parsed RTP packet that arrived at `now`. Packets of any payload type may be
    /// fed: audio packets move the stream's media time (which ends presses whose end packets
    /// were lost); telephone-event and red packets carry the events.
    pub fn handle_rtp(&mut self, now: Instant, packet: &RtpPacket<'_>) -> Result<(), Rfc4733Error> {
        let pt = packet.payload_type();
        let is_event = self.config.event_payload_types.contains(&pt);
        let is_red = !is_event && self.config.red_payload_types.contains(&pt);
        // Validate before touching any state, so a refused packet changes nothing.
        let red = if is_red {
            Some(unwrap_red(packet.payload())?)
        } else {
            None
        };
        let primary = if is_event {
            Some(EventPayload::parse(packet.payload())?)
        } else {
            None
        };
        let mut skipped = 0;
        let mut blocks: [Option<(EventPayload, u32)>; crate::red::MAX_BLOCKS + 1] =
            [None; crate::red::MAX_BLOCKS + 1];
        if let Some(red) = &red {
            for (slot, block) in blocks.iter_mut().zip(red.iter()) {
                if self
                    .config
                    .event_payload_types
                    .contains(&block.payload_type)
                {
                    let ts = packet
                        .timestamp()
                        .wrapping_sub(u32::from(block.timestamp_offset));
                    match EventPayload::parse(block.data) {
                        Ok(event) => *slot = Some((event, ts)),
                        // An empty or short redundant block (senders send empty ones before
                        // they have history) only repeats the past: skip it, keep the rest.
                        Err(_) if !block.primary => skipped += 1,
                        Err(e) => return Err(e),
                    }
                }
            }
        }
        if let Some(event) = primary {
            blocks[0] = Some((event, packet.timestamp()));
        }

        self.stats.packets += 1;
        self.stats.skipped_blocks += skipped;
        let ssrc = packet.ssrc();
        let state = self.streams.entry(ssrc).or_insert_with(|| SsrcState {
            seq: SeqExtender::new(),
            ts: TimestampExtender::new(),
            origin: 0,
            latest_start: None,
            open: None,
            recent: VecDeque::with_capacity(RECENT),
        });
        state.seq.extend(u32::from(packet.sequence_number()));
        let first = state.ts.highest().is_none();
        let packet_ts = state.ts.extend(packet.timestamp());
        if first {
            state.origin = packet_ts;
        }

        let mut any_event = false;
        for (event, ts) in blocks.iter().flatten() {
            any_event = true;
            let ts = state.ts.peek(*ts).unwrap_or(packet_ts);
            self.stats.event_blocks += 1;
            Self::on_block(
                &self.config,
                self.gap,
                &mut self.stats,
                &mut self.events,
                ssrc,
                state,
                now,
                *event,
                ts,
            );
        }
        if !any_event {
            // Audio (or a red packet without events): only media time moves.
            if let Some(open) = state.open {
                if packet_ts > open.end + self.end_timeout {
                    Self::close(
                        &self.config,
                        &mut self.events,
                        ssrc,
                        state,
                        Ending::MediaTimeout,
                    );
                }
            }
        }
        Ok(())
    }

    /// When [`handle_timeout`](Self::handle_timeout) should next be called, if a press is open.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.streams
            .values()
            .filter_map(|s| s.open.map(|o| o.last_arrival + self.config.idle_timeout))
            .min()
    }

    /// Ends presses that have had no packet for the idle timeout as of `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        let idle = self.config.idle_timeout;
        let mut due: Vec<u32> = self
            .streams
            .iter()
            .filter(|(_, s)| s.open.is_some_and(|o| now >= o.last_arrival + idle))
            .map(|(&ssrc, _)| ssrc)
            .collect();
        // Same order on every run, whatever the hash map's.
        due.sort_unstable();
        for ssrc in due {
            let state = self.streams.get_mut(&ssrc).expect("key just listed");
            Self::close(
                &self.config,
                &mut self.events,
                ssrc,
                state,
                Ending::IdleTimeout,
            );
        }
    }

    /// The input has ended (end of a capture, call hung up): report every open press.
    pub fn finish(&mut self) {
        let mut ssrcs: Vec<u32> = self.streams.keys().copied().collect();
        ssrcs.sort_unstable();
        for ssrc in ssrcs {
            let state = self.streams.get_mut(&ssrc).expect("key just listed");
            if state.open.is_some() {
                Self::close(
                    &self.config,
                    &mut self.events,
                    ssrc,
                    state,
                    Ending::EndOfInput,
                );
            }
        }
    }

    /// The next event, if any.
    pub fn poll_event(&mut self) -> Option<DecoderEvent> {
        self.events.pop_front()
    }

    #[allow(clippy::too_many_arguments)]
    fn on_block(
        config: &DecoderConfig,
        gap: u64,
        stats: &mut DecoderStats,
        events: &mut VecDeque<DecoderEvent>,
        ssrc: u32,
        state: &mut SsrcState,
        now: Instant,
        event: EventPayload,
        ts: u64,
    ) {
        if event.duration == 0 {
            stats.zero_duration += 1;
            return;
        }
        let code = event.code;
        if state
            .recent
            .iter()
            .any(|f| f.code == code && ts >= f.start && ts <= f.end + gap)
        {
            stats.late_copies += 1;
            return;
        }
        if state.latest_start.is_some_and(|latest| ts < latest) {
            // From before the newest press and not a copy of one we remember (its other
            // packets were lost): reporting it now would put a digit out of order.
            stats.late_copies += 1;
            return;
        }
        if let Some(open) = state.open.as_mut() {
            let continues = open.code == code
                && ts >= open.start
                && (ts <= open.end + gap || is_next_segment(ts - open.segment));
            if continues {
                open.absorb(ts, event, now);
                if event.end {
                    Self::close(config, events, ssrc, state, Ending::EndPacket);
                }
                return;
            }
            Self::close(config, events, ssrc, state, Ending::NextEvent);
        }
        let mut open = OpenEvent {
            code,
            start: ts,
            end: ts,
            segment: ts,
            segment_duration: 0,
            volume: event.volume,
            last_arrival: now,
        };
        open.absorb(ts, event, now);
        state.open = Some(open);
        state.latest_start = Some(ts);
        if let Some(key) = Key::from_event_code(code) {
            events.push_back(DecoderEvent::PressStarted {
                ssrc,
                key,
                start: MediaTime::new(ts, config.clock_rate),
            });
        }
        if event.end {
            Self::close(config, events, ssrc, state, Ending::EndPacket);
        }
    }

    fn close(
        config: &DecoderConfig,
        events: &mut VecDeque<DecoderEvent>,
        ssrc: u32,
        state: &mut SsrcState,
        ending: Ending,
    ) {
        let Some(open) = state.open else {
            return;
        };
        state.forget_open();
        if state.recent.len() == RECENT {
            if let Some(oldest) = state.recent.front_mut() {
                oldest.code.zeroize();
            }
            state.recent.pop_front();
        }
        state.recent.push_back(Finished {
            code: open.code,
            start: open.start,
            end: open.end,
        });
        let rate = config.clock_rate;
        let start = MediaTime::new(open.start, rate);
        let duration = MediaDuration::new(open.end - open.start, rate);
        events.push_back(match Key::from_event_code(open.code) {
            Some(key) => DecoderEvent::Press {
                ssrc,
                press: KeyPress::new(
                    key,
                    start,
                    duration,
                    Some(Dbm0(-(open.volume as i8))),
                    Source::Rfc4733,
                ),
                ending,
            },
            None => DecoderEvent::NonKeyEvent {
                ssrc,
                code: open.code,
                start,
                duration,
            },
        });
    }
}

/// RFC 4733 §2.5.1.3: a long event continues in a new segment whose timestamp is the previous
/// segment's plus the largest duration (0xFFFF; some senders step 0x10000).
fn is_next_segment(step: u64) -> bool {
    step == 0xFFFF || step == 0x1_0000
}

impl OpenEvent {
    fn absorb(&mut self, ts: u64, event: EventPayload, now: Instant) {
        let raw = u64::from(event.duration);
        let duration = if ts == self.segment {
            // Same timestamp: undo a 16-bit wrap of the duration field, in either direction
            // (a late packet from before a wrap must not look like a new wrap).
            let mut d = (self.segment_duration & !0xFFFF) | raw;
            if d + 0x8000 < self.segment_duration {
                d += 0x1_0000;
            } else if d > self.segment_duration + 0x8000 && d >= 0x1_0000 {
                d -= 0x1_0000;
            }
            self.segment_duration = self.segment_duration.max(d);
            d
        } else {
            if ts > self.segment {
                self.segment = ts;
                self.segment_duration = raw;
            }
            raw
        };
        // A duration reaching back past this packet's own timestamp to the press start is
        // counted from the start (senders that move the timestamp on every packet); otherwise
        // from the packet's timestamp (segments of a long event).
        let end = if duration > ts - self.start {
            self.start + duration
        } else {
            ts + duration
        };
        self.end = self.end.max(end);
        self.volume = event.volume;
        self.last_arrival = now;
    }
}
