//! # tonegate-call: one call, sans-IO
//!
//! A call's media path and its payment sessions: media -> pci -> control, joined.
//!
//! ```text
//!  CallInput::Rtp ──► media::listener::Listener ──ListenerEvent::Press──► CallClock ──► pci::Collector
//!   (a datagram,        (RTP, RFC 4733, audio,        (one digit stream    (call media     │ CollectEvent
//!    its arrival)        in-band, merger, loss)        per SSRC)            time)          ▼ (masked)
//!        │                                                                            control::Session
//!        └─► relay policy ──► CallOutput::Forward (telephone-events dropped and key       │  ▲
//!            (MediaMode)       tones scrubbed while a session is active:                  │  │ CallInput::{Invoke,
//!                              tonegate_media::scrub)                                     │  │  StartResult, Agent,
//!  CallOutput::{Agent, StartConnection, Connection, Pay, KeyHeard, HungUp} ◄── Output ◄───┘  │  Payment, HangUp, ..}
//! ```
//!
//! [`Call`] owns the listener, the PCI collector and the control session of one call, and is
//! driven like the cores it joins, in the style of str0m: [`Call::handle_input`]`(now, input)`
//! for everything that happens to it (a datagram, the agent invoking a function or acting, a
//! connection's or the processor's answer, a hang-up, a due timeout), [`Call::poll_output`] for
//! what it asks of the world, [`Call::poll_timeout`] for when to wake it. Every input carries
//! its `now`, so a collector started when the start connection answers starts then, not at
//! the last packet.
//!
//! RTCP multiplexed on the RTP port (RFC 5761) is told apart before the listener: it is never
//! heard as media, and a relay forwards it as it came. In [`MediaMode::Anchored`] (the ng
//! protocol: tonegate in both directions of the call) the call relays the caller's direction
//! only; the agent's voice is relayed untouched by the gateway and never reaches the call.
//!
//! What this crate owns: the call's policy (which packets reach the collector, which are
//! forwarded and how they are masked, when silence ends the call). What it must never do: read
//! a socket or a clock, spawn a task, call a processor or a connection (it asks for them as
//! outputs), or hand a key to anything but the collector. It depends on no runtime, no HTTP
//! library and no database: the gateway (`tonegate serve`) is its runtime, and a test drives a
//! whole call in microseconds.
//!
//! ```
//! use std::time::{Duration, Instant};
//! use tonegate_call::{Call, CallConfig, CallInput};
//!
//! let start = Instant::now();
//! let mut call = Call::new(CallConfig::default(), start);
//! // A datagram that is not RTP is refused with a reason, and changes nothing.
//! assert!(call.handle_input(start, CallInput::Rtp(b"not rtp")).is_err());
//! // Thirty seconds of silence later (the default no-media timeout) the call hangs up.
//! let due = call.poll_timeout().unwrap();
//! assert_eq!(due, start + Duration::from_secs(30));
//! call.handle_input(due, CallInput::Timeout).unwrap();
//! assert!(call.is_ended());
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod clock;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rtp_types::RtpPacket;
use rustc_hash::FxHashMap;
use tonegate_control::config::Function;
use tonegate_control::session::{
    ActionRefused, AgentAction, AgentEvent, CollectorCommand, ConnectionKind, Input, Invocation,
    Output, Session, StartFailure, State,
};
use tonegate_media::audio::AudioConfig;
use tonegate_media::inband::InbandConfig;
use tonegate_media::listener::{Listener, ListenerConfig, ListenerEvent};
use tonegate_media::red::{unwrap_red, MAX_BLOCKS};
use tonegate_media::rfc4733::{DecoderConfig, Ending, Rfc4733Error};
use tonegate_media::scrub::ToneScrubber;
use tonegate_media::{ClockRate, MediaDuration, MediaTime, Source};
use tonegate_pci::{Collector, PaymentOutcome, PaymentRequest, SealedCard, YearMonth};

pub use clock::CallClock;
pub use tonegate_media::scrub::Replacement;

/// Where the caller's media goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MediaMode {
    /// tonegate receives a copy and forwards nothing.
    Fork,
    /// tonegate forwards the caller's media to this address (the agent's media, a recorder),
    /// without telephone-events while a payment session is active.
    Relay(SocketAddr),
    /// tonegate anchors both directions of the call (the ng protocol): the caller's media is
    /// relayed, masked as in [`MediaMode::Relay`], to the other leg once its address is known
    /// ([`CallInput::RelayTo`]: an SDP answer, then the source the other leg is latched to);
    /// until then nothing is forwarded. The other direction (the agent's voice) never passes
    /// through the call: the gateway relays it untouched.
    Anchored,
}

/// A call's media settings.
#[derive(Clone, Debug)]
pub struct CallConfig {
    /// Telephone-event payload types (from the SDP offer; default 101).
    pub event_payload_types: Vec<u8>,
    /// RFC 2198 red payload types.
    pub red_payload_types: Vec<u8>,
    /// Fork, relay, or anchored (both directions through tonegate).
    pub mode: MediaMode,
    /// A call with no media for this long ends as a hang-up.
    pub no_media_timeout: Duration,
    /// In-band DTMF: which payload types carry audio (PCMU 0 and PCMA 8 by default) and
    /// whether to listen to it at all (`enabled`, default true).
    pub audio: AudioConfig,
    /// In-band detector thresholds and kernel (also the relay's tone scrubber's kernel).
    pub inband: InbandConfig,
    /// When a relay masks key presses in what it forwards.
    pub masking: MaskingConfig,
}

/// When a relay masks the caller's key presses in what it forwards (`docs/pci-boundary.md`,
/// "Masking"). Masking holds from the moment a payment session starts until `hold_over` after
/// it ends, for the whole call when `whole_call` is set, and while DTMF is blocked on demand
/// ([`CallInput::BlockDtmf`], the ng protocol's `block DTMF`). While it holds, telephone-event
/// and RFC 2198 red packets are not forwarded and audio goes through the tone scrubber; a
/// key press heard as telephone-events at any moment while masking held is never forwarded
/// afterwards either (its end retransmissions, red copies of it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MaskingConfig {
    /// Mask for the whole call, sessions or not (default false).
    pub whole_call: bool,
    /// How long masking outlasts a session (default 2 s: longer than a key press's end
    /// retransmissions, RFC 2198 redundancy and a caller's last, late key).
    pub hold_over: Duration,
    /// What replaces the audio samples that might hold a key tone (default silence; comfort
    /// noise or a neutral 1 kHz tone: `docs/masking.md`).
    pub replacement: Replacement,
}

impl Default for MaskingConfig {
    fn default() -> Self {
        MaskingConfig {
            whole_call: false,
            hold_over: Duration::from_secs(2),
            replacement: Replacement::Silence,
        }
    }
}

impl Default for CallConfig {
    fn default() -> Self {
        CallConfig {
            event_payload_types: vec![101],
            red_payload_types: Vec::new(),
            mode: MediaMode::Fork,
            no_media_timeout: Duration::from_secs(30),
            audio: AudioConfig::default(),
            inband: InbandConfig::default(),
            masking: MaskingConfig::default(),
        }
    }
}

/// Everything that happens to a call, given to [`Call::handle_input`] with its time.
#[derive(Debug)]
pub enum CallInput<'a> {
    /// A UDP datagram from the caller's media.
    Rtp(&'a [u8]),
    /// The agent invokes `function`: a payment session starts.
    Invoke {
        /// The function.
        function: Arc<Function>,
        /// The new session's reference.
        reference: String,
        /// Input parameters, refs and vars.
        invocation: Invocation,
        /// This month, for expiry checks.
        today: YearMonth,
    },
    /// The start connection's result (answering [`CallOutput::StartConnection`]).
    StartResult(Result<serde_json::Value, StartFailure>),
    /// An agent action on the active session.
    Agent(AgentAction),
    /// The processor's outcome (answering [`CallOutput::Pay`]).
    Payment(PaymentOutcome),
    /// The caller hung up (`DELETE /v1/calls/{id}`, a BYE).
    HangUp,
    /// The gateway is shutting down and ends the call; an open session fails as
    /// `internal-error` rather than `caller-hung-up`.
    ShutDown,
    /// The time [`Call::poll_timeout`] gave has come.
    Timeout,
    /// Mask key presses on the relay from now on (`true`) whatever the sessions, or go back
    /// to masking during sessions only (`false`): rtpengine's `block DTMF` / `unblock DTMF`.
    BlockDtmf(bool),
    /// The other leg now receives at this address: forward there from now on (relay and
    /// anchored modes; a fork forwards nothing and ignores it).
    RelayTo(SocketAddr),
    /// Media was heard on the call's other leg (anchored calls): the call is alive although
    /// the caller sends nothing (the agent holding, the caller muted), so the no-media hang-up
    /// counts from now.
    Activity,
    /// From now on, a call without media for this long is hung up, counted from now (anchored
    /// calls: a long wait while the call rings, the media timeout once it is answered).
    NoMediaTimeout(Duration),
    /// More telephone-event and RFC 2198 red payload types the caller may send, learnt after
    /// the call started (an SDP answer: the offerer sends with the answer's numbers).
    PayloadTypes {
        /// Telephone-event payload types.
        event: Vec<u8>,
        /// Red payload types.
        red: Vec<u8>,
    },
}

/// What a call asks of the world.
#[derive(Debug)]
pub enum CallOutput {
    /// Send this packet to the relay destination (RTP, masked as the relay policy says, or
    /// RTCP, as it came).
    Forward(SocketAddr, Vec<u8>),
    /// An event for the agent side of `session`.
    Agent {
        /// The session's reference.
        session: String,
        /// The masked event.
        event: AgentEvent,
    },
    /// Call the start connection of the session's function with this body, then give its
    /// result as [`CallInput::StartResult`].
    StartConnection {
        /// The session's reference.
        session: String,
        /// The flat Set variables.
        body: serde_json::Value,
    },
    /// Deliver the success or failure connection (through the outbox).
    Connection {
        /// The session's reference.
        session: String,
        /// Success or failure.
        kind: ConnectionKind,
        /// The masked body.
        body: serde_json::Value,
    },
    /// Pay this card (opaque) with `tonegate_pci::pay`, then give the outcome as
    /// [`CallInput::Payment`].
    Pay {
        /// The session's reference.
        session: String,
        /// The card, sealed.
        card: SealedCard,
        /// What to charge.
        request: PaymentRequest,
    },
    /// A key was pressed. Which key is not said: the key went to the collector, if a session
    /// was collecting, and nowhere else. For metrics, timelines and the one-path tests.
    KeyHeard(HeardPress),
    /// No media for the configured time: the call is treated as hung up.
    HungUp,
}

/// A key press as the call heard it, without its key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeardPress {
    /// The stream (RTP SSRC).
    pub ssrc: u32,
    /// Start on the call's media timeline ([`CallClock`]: 0 at the call's start).
    pub start: MediaTime,
    /// Duration.
    pub duration: MediaDuration,
    /// Heard as RFC 4733 events or as tones.
    pub source: Source,
    /// How its end was recognised.
    pub ending: Ending,
}

/// Why a function could not be invoked on a call.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum InvokeError {
    /// A payment session is already running on this call.
    #[error("a payment session ({0}) is already active on this call")]
    SessionActive(String),
    /// The call has ended.
    #[error("the call has ended")]
    CallEnded,
    /// The input parameters do not match the function's input schema.
    #[error("input parameters do not match the input schema: {}", .0.join("; "))]
    InvalidParams(Vec<String>),
}

/// Why a call refused an input. The input changed nothing.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// A datagram that is not RTP, or a telephone-event the decoder refused.
    #[error("datagram refused: {0}")]
    Packet(#[from] Rfc4733Error),
    /// The function could not be invoked.
    #[error(transparent)]
    Invoke(#[from] InvokeError),
    /// The session refused the agent's action in its state.
    #[error(transparent)]
    Action(#[from] ActionRefused),
}

struct Payment {
    session: Session,
    collector: Option<Collector>,
    /// Whether the masking hold-over after this session's end has been started.
    hold_over_started: bool,
}

/// One call. See the crate docs.
pub struct Call {
    config: CallConfig,
    /// The one listening path, the same a replay runs.
    listener: Listener,
    clock: CallClock,
    last_packet: Instant,
    /// The last RTP or RTCP packet: what keeps the call from the no-media hang-up.
    last_activity: Instant,
    /// Where relayed media goes (relay and anchored modes), when known.
    relay_to: Option<SocketAddr>,
    rtcp: u64,
    payment: Option<Payment>,
    ended: bool,
    outputs: VecDeque<CallOutput>,
    /// Per SSRC: what the relay does to the stream it forwards.
    relayed: FxHashMap<u32, RelayedStream>,
    scrubbed: u64,
    /// Masking on demand ([`CallInput::BlockDtmf`]).
    blocked: bool,
    /// Masking holds until then after the last session ended (its hold-over).
    masked_until: Option<Instant>,
}

/// One forwarded stream's relay state.
struct RelayedStream {
    /// Takes key tones out of the audio while masking holds.
    scrubber: ToneScrubber,
    /// RTP timestamps (event starts) of telephone-events seen while masking held: their
    /// packets stay unforwarded after masking ends (end retransmissions, red copies).
    masked_events: [Option<u32>; 16],
    next_masked: usize,
    /// Packets not forwarded so far: forwarded packets' sequence numbers are lowered by this,
    /// so that the other leg sees a continuous sequence.
    dropped: u16,
}

impl RelayedStream {
    fn remember(&mut self, timestamp: u32) {
        if !self.masked_events.contains(&Some(timestamp)) {
            self.masked_events[self.next_masked] = Some(timestamp);
            self.next_masked = (self.next_masked + 1) % self.masked_events.len();
        }
    }

    fn was_masked(&self, timestamp: u32) -> bool {
        self.masked_events.contains(&Some(timestamp))
    }
}

/// Running totals of a call, for metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CallCounters {
    /// RTP packets received.
    pub packets: u64,
    /// Datagrams refused.
    pub refused: u64,
    /// Key presses heard as RFC 4733 telephone-events.
    pub presses: u64,
    /// Key presses heard as in-band tones (and not also as events).
    pub presses_inband: u64,
    /// Packets missing from the sequence-number ranges seen.
    pub lost: u64,
    /// Relayed audio packets sent as silence (they might have held a key tone).
    pub scrubbed: u64,
    /// RTCP packets received (RFC 5761 demultiplexing: on the RTP port), never heard as media.
    pub rtcp: u64,
}

impl std::fmt::Debug for Call {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Call")
            .field("packets", &self.listener.totals().packets)
            .field("ended", &self.ended)
            .field("session", &self.payment.as_ref().map(|p| p.session.state()))
            .finish_non_exhaustive()
    }
}

impl Call {
    /// A call that started at `now`: call media time 0.
    pub fn new(config: CallConfig, now: Instant) -> Call {
        let listener = Listener::new(ListenerConfig {
            decoder: DecoderConfig {
                event_payload_types: config.event_payload_types.clone(),
                red_payload_types: config.red_payload_types.clone(),
                ..DecoderConfig::default()
            },
            audio: config.audio.clone(),
            inband: config.inband.clone(),
        });
        let relay_to = match config.mode {
            MediaMode::Relay(to) => Some(to),
            MediaMode::Fork | MediaMode::Anchored => None,
        };
        Call {
            config,
            listener,
            clock: CallClock::new(ClockRate::NARROWBAND, now),
            last_packet: now,
            last_activity: now,
            relay_to,
            rtcp: 0,
            payment: None,
            ended: false,
            outputs: VecDeque::new(),
            relayed: FxHashMap::default(),
            scrubbed: 0,
            blocked: false,
            masked_until: None,
        }
    }

    /// Running totals, for metrics.
    pub fn counters(&self) -> CallCounters {
        let totals = self.listener.totals();
        CallCounters {
            packets: totals.packets,
            refused: totals.refused,
            presses: totals.presses_rfc4733,
            presses_inband: totals.presses_inband,
            lost: totals.lost,
            scrubbed: self.scrubbed,
            rtcp: self.rtcp,
        }
    }

    /// The active (or last) session's reference and state.
    pub fn session(&self) -> Option<(&str, State)> {
        self.payment
            .as_ref()
            .map(|p| (p.session.reference(), p.session.state()))
    }

    /// Whether the call has ended.
    pub fn is_ended(&self) -> bool {
        self.ended
    }

    fn session_active(&self) -> bool {
        self.payment
            .as_ref()
            .is_some_and(|p| !p.session.state().is_terminal())
    }

    /// Handles one input at `now`. A refused input changes nothing; the error says why.
    /// Inputs after the call ended are ignored (an invocation is refused as
    /// [`InvokeError::CallEnded`]).
    pub fn handle_input(&mut self, now: Instant, input: CallInput<'_>) -> Result<(), CallError> {
        match input {
            CallInput::Rtp(datagram) => self.rtp(now, datagram)?,
            CallInput::Invoke {
                function,
                reference,
                invocation,
                today,
            } => self.invoke(now, function, reference, invocation, today)?,
            CallInput::StartResult(result) => self.session_input(now, Input::StartResult(result)),
            CallInput::Agent(action) => self.agent_action(now, action)?,
            CallInput::Payment(outcome) => self.session_input(now, Input::Payment(outcome)),
            CallInput::HangUp => self.end(now, Input::HangUp),
            CallInput::ShutDown => self.end(now, Input::Shutdown),
            CallInput::Timeout => self.timeout(now),
            CallInput::BlockDtmf(on) => self.blocked = on,
            CallInput::RelayTo(to) => {
                if self.config.mode != MediaMode::Fork {
                    self.relay_to = Some(to);
                }
            }
            CallInput::PayloadTypes { event, red } => self.add_payload_types(&event, &red),
            CallInput::Activity => self.last_activity = self.last_activity.max(now),
            CallInput::NoMediaTimeout(timeout) => {
                self.config.no_media_timeout = timeout;
                self.last_activity = self.last_activity.max(now);
            }
        }
        Ok(())
    }

    /// When to give [`CallInput::Timeout`]: a press whose end was lost, a collection timeout
    /// (on media time, projected onto the wall clock while media is silent), or the end of
    /// the call when no media comes.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.ended {
            return None;
        }
        let collector = self
            .payment
            .as_ref()
            .and_then(|p| p.collector.as_ref())
            .and_then(Collector::poll_timeout)
            .map(|at| self.clock.instant_of(self.last_packet, at));
        [
            self.listener.poll_timeout(),
            collector,
            Some(self.last_activity + self.config.no_media_timeout),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// The next output.
    pub fn poll_output(&mut self) -> Option<CallOutput> {
        self.outputs.pop_front()
    }

    fn rtp(&mut self, now: Instant, datagram: &[u8]) -> Result<(), Rfc4733Error> {
        if self.ended {
            return Ok(());
        }
        if is_rtcp(datagram) {
            // RTCP multiplexed on the RTP port (RFC 5761): reports about the streams, no
            // media. Read as RTP it would look like a new stream with a payload type of
            // 72-76 (and a relay would renumber its length field); it goes out as it came.
            self.rtcp += 1;
            self.last_activity = now;
            if let Some(to) = self.relay_to {
                self.outputs
                    .push_back(CallOutput::Forward(to, datagram.to_vec()));
            }
            return Ok(());
        }
        let packet = match RtpPacket::parse(datagram) {
            Ok(p) => p,
            Err(_) => return self.listener.handle_packet(now, datagram),
        };
        self.last_packet = now;
        self.last_activity = now;
        let result = self.listener.handle_rtp(now, &packet);
        let ssrc = packet.ssrc();
        if let Some(latest) = self.listener.latest(ssrc) {
            self.clock.map(now, ssrc, latest);
        }
        if self.config.mode != MediaMode::Fork {
            self.relay(now, datagram, &packet);
        }
        self.drain_listener(now);
        result
    }

    fn add_payload_types(&mut self, event: &[u8], red: &[u8]) {
        let new = |known: &[u8], pt: &&u8| !known.contains(pt) && **pt < 128;
        let event: Vec<u8> = event
            .iter()
            .filter(|pt| new(&self.config.event_payload_types, pt))
            .copied()
            .collect();
        let red: Vec<u8> = red
            .iter()
            .filter(|pt| new(&self.config.red_payload_types, pt))
            .copied()
            .collect();
        self.listener.add_payload_types(&event, &red);
        self.config.event_payload_types.extend(event);
        self.config.red_payload_types.extend(red);
    }

    /// Whether masking holds at `now` (see [`MaskingConfig`]).
    pub fn masking(&self, now: Instant) -> bool {
        self.config.masking.whole_call
            || self.blocked
            || self.session_active()
            || self.masked_until.is_some_and(|until| now < until)
    }

    /// The relay policy: while masking does not hold, every packet goes out as it came (but
    /// telephone-events of a press heard while masking held); while it holds, telephone-event
    /// and red packets are dropped, and in a PCMU, PCMA or L16 packet the samples that might
    /// hold a key tone (with a tone's tail into the packet after it in media time) are replaced
    /// ([`ToneScrubber::scrub_at`]), while a packet in any other payload type, which cannot be
    /// inspected, is not forwarded at all
    /// (the SDP answer offers PCMU and PCMA only). Forwarded packets are renumbered so that
    /// the sequence stays continuous over dropped ones.
    fn relay(&mut self, now: Instant, datagram: &[u8], packet: &RtpPacket<'_>) {
        let masking = self.masking(now);
        let kernel = self.config.inband.kernel;
        let replacement = self.config.masking.replacement;
        let stream = self
            .relayed
            .entry(packet.ssrc())
            .or_insert_with(|| RelayedStream {
                scrubber: ToneScrubber::with_kernel(kernel).with_replacement(replacement),
                masked_events: [None; 16],
                next_masked: 0,
                dropped: 0,
            });
        let is_event = self.listener.is_event_payload_type(packet.payload_type());
        let mut out = datagram.to_vec();
        let forward = if is_event {
            // The event starts this packet carries: its own timestamp and, in RFC 2198 red,
            // each redundant block's (earlier events repeated).
            let mut starts = [None; MAX_BLOCKS + 2];
            starts[0] = Some(packet.timestamp());
            if self
                .config
                .red_payload_types
                .contains(&packet.payload_type())
            {
                if let Ok(blocks) = unwrap_red(packet.payload()) {
                    for (slot, block) in starts.iter_mut().skip(1).zip(blocks.iter()) {
                        *slot = Some(
                            packet
                                .timestamp()
                                .wrapping_sub(u32::from(block.timestamp_offset)),
                        );
                    }
                }
            }
            let mut starts = starts.into_iter().flatten();
            if masking {
                starts.for_each(|t| stream.remember(t));
                false
            } else {
                !starts.any(|t| stream.was_masked(t))
            }
        } else if !masking {
            true
        } else if let Some(codec) = self.config.audio.codec(packet.payload_type()) {
            // Where the payload lies in the datagram (after CSRCs and extension).
            let at = packet.payload().as_ptr() as usize - datagram.as_ptr() as usize;
            let payload = at..at + packet.payload().len();
            // Hang-over follows media time: the packet after a toned one in timestamp
            // order is scrubbed at its start whenever it arrives (reordering).
            if stream
                .scrubber
                .scrub_at(codec, packet.timestamp(), &mut out[payload])
            {
                self.scrubbed += 1;
            }
            true
        } else {
            false
        };
        if !forward {
            stream.dropped = stream.dropped.wrapping_add(1);
            return;
        }
        // Nowhere to send it yet (an anchored call before the answer): the policy above still
        // ran, so a key heard now stays masked later, but nothing was dropped from a stream
        // the other leg sees.
        let Some(to) = self.relay_to else {
            return;
        };
        if stream.dropped != 0 {
            let seq = packet.sequence_number().wrapping_sub(stream.dropped);
            out[2..4].copy_from_slice(&seq.to_be_bytes());
        }
        self.outputs.push_back(CallOutput::Forward(to, out));
    }

    /// Moves the listener's presses onto the call's timeline: to the collector, when a
    /// session collects, and as [`CallOutput::KeyHeard`] without the key.
    fn drain_listener(&mut self, now: Instant) {
        while let Some(event) = self.listener.poll_event() {
            let ListenerEvent::Press {
                ssrc,
                press,
                ending,
            } = event
            else {
                continue;
            };
            let start = self.clock.map(now, ssrc, press.start());
            let end = self
                .clock
                .map(now, ssrc, press.start().after(press.duration()));
            self.outputs.push_back(CallOutput::KeyHeard(HeardPress {
                ssrc,
                start,
                duration: press.duration(),
                source: press.source(),
                ending,
            }));
            if let Some(collector) = self.payment.as_mut().and_then(|p| p.collector.as_mut()) {
                collector.handle_key(end, press.key());
            }
        }
        self.pump(now);
    }

    fn invoke(
        &mut self,
        now: Instant,
        function: Arc<Function>,
        reference: String,
        invocation: Invocation,
        today: YearMonth,
    ) -> Result<(), InvokeError> {
        if self.ended {
            return Err(InvokeError::CallEnded);
        }
        if let Some(p) = &self.payment {
            if !p.session.state().is_terminal() {
                return Err(InvokeError::SessionActive(p.session.reference().to_owned()));
            }
        }
        function
            .validate_params(&serde_json::Value::Object(invocation.params.clone()))
            .map_err(InvokeError::InvalidParams)?;
        let session = Session::new(function, reference, invocation, today);
        self.payment = Some(Payment {
            session,
            collector: None,
            hold_over_started: false,
        });
        self.pump(now);
        Ok(())
    }

    fn agent_action(&mut self, now: Instant, action: AgentAction) -> Result<(), ActionRefused> {
        let Some(payment) = &mut self.payment else {
            return Err(ActionRefused {
                action: "act",
                state: "none",
                reason: "no payment session on this call",
            });
        };
        let result = payment.session.handle_input(Input::Agent(action));
        self.pump(now);
        result
    }

    fn session_input(&mut self, now: Instant, input: Input) {
        if let Some(payment) = &mut self.payment {
            let _ = payment.session.handle_input(input);
        }
        self.pump(now);
    }

    fn end(&mut self, now: Instant, why: Input) {
        if self.ended {
            return;
        }
        self.ended = true;
        if let Some(payment) = &mut self.payment {
            let _ = payment.session.handle_input(why);
        }
        // The session ends (and cancels its collector) before the presses still open are
        // flushed: a key finishing at the hang-up is heard, never collected.
        self.pump(now);
        self.listener.finish();
        self.drain_listener(now);
    }

    fn timeout(&mut self, now: Instant) {
        if self.ended {
            return;
        }
        if now >= self.last_activity + self.config.no_media_timeout {
            self.outputs.push_back(CallOutput::HungUp);
            self.end(now, Input::HangUp);
            return;
        }
        self.listener.handle_timeout(now);
        self.drain_listener(now);
        let at = self.clock.now(now);
        if let Some(collector) = self.payment.as_mut().and_then(|p| p.collector.as_mut()) {
            collector.handle_timeout(at);
        }
        self.pump(now);
    }

    /// Moves collector events into the session and session outputs out, until both are quiet.
    fn pump(&mut self, now: Instant) {
        let media_now = self.clock.now(now.max(self.last_packet));
        let Some(payment) = &mut self.payment else {
            return;
        };
        loop {
            let mut moved = false;
            if let Some(collector) = &mut payment.collector {
                while let Some(event) = collector.poll_event() {
                    moved = true;
                    let _ = payment.session.handle_input(Input::Collect(event));
                }
            }
            while let Some(output) = payment.session.poll_output() {
                moved = true;
                let session = payment.session.reference().to_owned();
                match output {
                    Output::Agent(event) => {
                        self.outputs.push_back(CallOutput::Agent { session, event })
                    }
                    Output::Connection {
                        kind: ConnectionKind::Start,
                        body,
                    } => self
                        .outputs
                        .push_back(CallOutput::StartConnection { session, body }),
                    Output::Connection { kind, body } => {
                        self.outputs.push_back(CallOutput::Connection {
                            session,
                            kind,
                            body,
                        })
                    }
                    Output::Collector(command) => {
                        command_collector(&mut payment.collector, command, media_now, &session)
                    }
                    Output::Pay(request) => {
                        match payment.collector.as_mut().and_then(Collector::take_card) {
                            Some(card) => self.outputs.push_back(CallOutput::Pay {
                                session,
                                card,
                                request,
                            }),
                            None => {
                                tracing::error!(session = %session, "payment requested without a collected card");
                                let _ = payment
                                    .session
                                    .handle_input(Input::Payment(PaymentOutcome::not_collected()));
                            }
                        }
                    }
                }
            }
            if !moved {
                break;
            }
        }
        // The hold-over runs from the moment the session is first seen ended.
        if payment.session.state().is_terminal() && !payment.hold_over_started {
            payment.hold_over_started = true;
            self.masked_until = Some(now + self.config.masking.hold_over);
        }
    }
}

/// Whether a datagram on an RTP port is RTCP (RFC 5761 §4: a second byte of 192-223, which
/// as RTP would be payload types 64-95 with the marker bit; RTP avoids them for this reason).
fn is_rtcp(datagram: &[u8]) -> bool {
    datagram.len() >= 8 && datagram[0] >> 6 == 2 && (192..=223).contains(&datagram[1])
}

/// Carries out the session's command to its collector at call media time `now`.
fn command_collector(
    collector: &mut Option<Collector>,
    command: CollectorCommand,
    now: MediaTime,
    session: &str,
) {
    match command {
        CollectorCommand::Start(config) => match Collector::new(config) {
            Ok(mut started) => {
                started.start(now);
                *collector = Some(started);
            }
            Err(e) => {
                tracing::error!(session = %session, error = %e, "collector refused its configuration");
            }
        },
        CollectorCommand::Pause => {
            if let Some(c) = collector {
                c.pause(now);
            }
        }
        CollectorCommand::Resume => {
            if let Some(c) = collector {
                c.resume(now);
            }
        }
        CollectorCommand::DifferentCard => {
            if let Some(c) = collector {
                c.different_card(now);
            }
        }
        CollectorCommand::Cancel => {
            if let Some(mut c) = collector.take() {
                c.cancel();
            }
        }
    }
}
