//! One call's media path and payment session, sans-IO: media -> pci -> control.
//!
//! ```text
//!  RTP packet ──► relay policy ──► CallOutput::Forward (relay mode; telephone-events dropped
//!      │                            and key tones scrubbed from audio while a payment session
//!      │                            is active: tonegate_media::scrub)
//!      ▼
//!  Rfc4733Decoder ──Press──► CallClock (call media time) ──► pci::Collector ──CollectEvent──► Session
//!                                                                 ▲                              │
//!                                                                 └──── CollectorCommand ◄───────┤
//!  CallOutput::{Agent, StartConnection, Connection, Pay, HungUp} ◄────── Output ◄────────────────┘
//! ```
//!
//! [`Call`] owns the decoder, the PCI collector and the control session of one call, and is
//! driven like the cores it joins: `handle_rtp(now, bytes)`, `handle_timeout(now)`,
//! `poll_timeout()`, `poll_output()`. The serve loop performs the outputs (UDP sends, HTTP
//! calls, the processor) and feeds results back. Keys reach the collector and nothing else;
//! the card leaves the collector only inside [`CallOutput::Pay`], opaque, for `tonegate_pci::pay`.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rtp_types::RtpPacket;
use tonegate_control::config::Function;
use tonegate_control::session::{
    ActionRefused, AgentAction, AgentEvent, CollectorCommand, ConnectionKind, Input, Invocation,
    Output, Session, StartFailure, State,
};
use tonegate_media::audio::{AudioConfig, AudioStream};
use tonegate_media::dedup::PressMerger;
use tonegate_media::inband::{InbandConfig, InbandDetector, InbandEvent};
use tonegate_media::rfc4733::{DecoderConfig, DecoderEvent, Rfc4733Decoder};
use tonegate_media::scrub::ToneScrubber;
use tonegate_media::{ClockRate, KeyPress, Source};
use tonegate_pci::{Collector, PaymentOutcome, PaymentRequest, SealedCard, YearMonth};

use crate::clock::CallClock;

/// Where the caller's media goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MediaMode {
    /// tonegate receives a copy and forwards nothing.
    Fork,
    /// tonegate forwards the caller's media to this address (the agent's media, a recorder),
    /// without telephone-events while a payment session is active.
    Relay(SocketAddr),
}

/// A call's media settings.
#[derive(Clone, Debug)]
pub struct CallConfig {
    /// Telephone-event payload types (from the SDP offer; default 101).
    pub event_payload_types: Vec<u8>,
    /// RFC 2198 red payload types.
    pub red_payload_types: Vec<u8>,
    /// Fork or relay.
    pub mode: MediaMode,
    /// A call with no media for this long ends as a hang-up.
    pub no_media_timeout: Duration,
    /// In-band DTMF: which payload types carry audio (PCMU 0 and PCMA 8 by default) and
    /// whether to listen to it at all (`enabled`, default true).
    pub audio: AudioConfig,
}

impl Default for CallConfig {
    fn default() -> Self {
        CallConfig {
            event_payload_types: vec![101],
            red_payload_types: Vec::new(),
            mode: MediaMode::Fork,
            no_media_timeout: Duration::from_secs(30),
            audio: AudioConfig::default(),
        }
    }
}

/// What a call asks of the world.
#[derive(Debug)]
pub enum CallOutput {
    /// Send this packet to the relay destination.
    Forward(SocketAddr, Vec<u8>),
    /// An event for the agent side of `session`.
    Agent {
        /// The session's reference.
        session: String,
        /// The masked event.
        event: AgentEvent,
    },
    /// Call the start connection of the session's function with this body, then
    /// [`Call::start_result`].
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
    /// Pay this card (opaque) with `tonegate_pci::pay`, then [`Call::payment_outcome`].
    Pay {
        /// The session's reference.
        session: String,
        /// The card, sealed.
        card: SealedCard,
        /// What to charge.
        request: PaymentRequest,
    },
    /// No media for the configured time: the call is treated as hung up.
    HungUp,
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

struct Payment {
    session: Session,
    collector: Option<Collector>,
}

/// One SSRC's ears: its in-band audio path, and the merger that makes RFC 4733 events and
/// tones one digit stream (a tone also signalled as an event is one press).
struct Listener {
    audio: Option<AudioStream>,
    merger: PressMerger,
    /// Takes key tones out of the audio a relay forwards during a payment session.
    scrubber: ToneScrubber,
}

/// One call. See the module docs.
pub struct Call {
    config: CallConfig,
    decoder: Rfc4733Decoder,
    clock: CallClock,
    last_packet: Instant,
    payment: Option<Payment>,
    ended: bool,
    outputs: VecDeque<CallOutput>,
    packets: u64,
    refused: u64,
    presses: u64,
    presses_inband: u64,
    scrubbed: u64,
    /// Per SSRC: the in-band path (when audio is decoded) and the one-digit-stream merger.
    listeners: std::collections::HashMap<u32, Listener>,
    /// Per SSRC: sequence extension, lowest and count, for loss.
    sequences: std::collections::HashMap<u32, (tonegate_media::extend::SeqExtender, u64, u64)>,
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
}

impl std::fmt::Debug for Call {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Call")
            .field("packets", &self.packets)
            .field("ended", &self.ended)
            .field("session", &self.payment.as_ref().map(|p| p.session.state()))
            .finish_non_exhaustive()
    }
}

impl Call {
    /// A call that started at `now`.
    pub fn new(config: CallConfig, now: Instant) -> Call {
        let decoder = Rfc4733Decoder::new(DecoderConfig {
            event_payload_types: config.event_payload_types.clone(),
            red_payload_types: config.red_payload_types.clone(),
            ..DecoderConfig::default()
        });
        Call {
            config,
            decoder,
            clock: CallClock::new(ClockRate::NARROWBAND, now),
            last_packet: now,
            payment: None,
            ended: false,
            outputs: VecDeque::new(),
            packets: 0,
            refused: 0,
            presses: 0,
            presses_inband: 0,
            scrubbed: 0,
            listeners: std::collections::HashMap::new(),
            sequences: std::collections::HashMap::new(),
        }
    }

    /// Running totals, for metrics.
    pub fn counters(&self) -> CallCounters {
        let lost = self
            .sequences
            .values()
            .map(|(seq, lowest, count)| {
                let expected = seq.highest().map_or(0, |h| h - lowest + 1);
                expected.saturating_sub(*count)
            })
            .sum();
        CallCounters {
            packets: self.packets,
            refused: self.refused,
            presses: self.presses,
            presses_inband: self.presses_inband,
            scrubbed: self.scrubbed,
            lost,
        }
    }

    /// RTP packets received, and how many the decoder refused.
    pub fn packet_counts(&self) -> (u64, u64) {
        (self.packets, self.refused)
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

    /// Handles one UDP datagram from the caller's media at `now`. Datagrams that are not RTP
    /// are dropped (and not forwarded); the error says why.
    pub fn handle_rtp(
        &mut self,
        now: Instant,
        datagram: &[u8],
    ) -> Result<(), tonegate_media::rfc4733::Rfc4733Error> {
        if self.ended {
            return Ok(());
        }
        let packet = match RtpPacket::parse(datagram) {
            Ok(p) => p,
            Err(e) => {
                self.refused += 1;
                return Err(e.into());
            }
        };
        self.packets += 1;
        self.last_packet = now;
        let (seq, lowest, count) = self
            .sequences
            .entry(packet.ssrc())
            .or_insert_with(|| (tonegate_media::extend::SeqExtender::new(), u64::MAX, 0));
        let n = seq.extend(u32::from(packet.sequence_number()));
        *lowest = (*lowest).min(n);
        *count += 1;
        let result = self.decoder.handle_rtp(now, &packet);
        if result.is_err() {
            self.refused += 1;
        }
        if let Some(latest) = self.decoder.latest(packet.ssrc()) {
            self.clock.map(now, packet.ssrc(), latest);
        }
        let codec = if self.config.audio.enabled {
            self.config.audio.codec(packet.payload_type())
        } else {
            None
        };
        let origin = self.decoder.origin(packet.ssrc());
        let listener = self
            .listeners
            .entry(packet.ssrc())
            .or_insert_with(|| Listener {
                audio: None,
                merger: PressMerger::new(),
                scrubber: ToneScrubber::new(),
            });
        if listener.audio.is_none() && codec.is_some() {
            let mut audio = AudioStream::new(
                self.config.audio.jitter_window,
                InbandDetector::new(InbandConfig::default()),
            );
            // Extend timestamps from the stream's first packet, as the RFC 4733 decoder did,
            // so both sources share one timeline for the merger.
            if let Some(origin) = origin {
                audio.handle_rtp(origin.ticks() as u32, None, &[]);
            }
            listener.audio = Some(audio);
        }
        if let Some(audio) = listener.audio.as_mut() {
            audio.handle_rtp(packet.timestamp(), codec, packet.payload());
        }
        if let MediaMode::Relay(to) = self.config.mode {
            let is_event = self
                .config
                .event_payload_types
                .contains(&packet.payload_type())
                || self
                    .config
                    .red_payload_types
                    .contains(&packet.payload_type());
            if !(is_event && self.session_active()) {
                let forward = if is_event {
                    Some(datagram.to_vec())
                } else {
                    // Where the payload lies in the datagram (after CSRCs and extension).
                    let at = packet.payload().as_ptr() as usize - datagram.as_ptr() as usize;
                    let payload = at..at + packet.payload().len();
                    self.relayed_audio(datagram, packet.ssrc(), packet.payload_type(), payload)
                };
                if let Some(forward) = forward {
                    self.outputs.push_back(CallOutput::Forward(to, forward));
                }
            }
        }
        self.drain_decoder(now);
        result
    }

    /// The datagram a relay forwards for a non-event packet: while a payment session is
    /// active, a PCMU, PCMA or L16 packet that might hold a key tone (and the one after it)
    /// goes out as the codec's silence ([`ToneScrubber`]), and a packet in any other payload
    /// type, which cannot be inspected, is not forwarded at all (the SDP answer offers PCMU and
    /// PCMA only); outside a session, every packet as it came.
    fn relayed_audio(
        &mut self,
        datagram: &[u8],
        ssrc: u32,
        payload_type: u8,
        payload: std::ops::Range<usize>,
    ) -> Option<Vec<u8>> {
        let mut out = datagram.to_vec();
        if self.session_active() {
            let codec = self.config.audio.codec(payload_type)?;
            if let Some(listener) = self.listeners.get_mut(&ssrc) {
                if listener.scrubber.scrub(codec, &mut out[payload]) {
                    self.scrubbed += 1;
                }
            }
        }
        Some(out)
    }

    fn drain_decoder(&mut self, now: Instant) {
        let mut heard: Vec<(u32, KeyPress)> = Vec::new();
        while let Some(event) = self.decoder.poll_event() {
            if let DecoderEvent::Press { ssrc, press, .. } = event {
                heard.push((ssrc, press));
            }
        }
        for (&ssrc, listener) in self.listeners.iter_mut() {
            if let Some(audio) = listener.audio.as_mut() {
                while let Some(event) = audio.poll_event() {
                    if let InbandEvent::Press(p) = event {
                        heard.push((ssrc, p.press));
                    }
                }
            }
        }
        for (ssrc, press) in heard {
            let Some(listener) = self.listeners.get_mut(&ssrc) else {
                continue;
            };
            let Some(press) = listener.merger.offer(press) else {
                continue;
            };
            match press.source() {
                Source::Rfc4733 => self.presses += 1,
                Source::Inband => self.presses_inband += 1,
            }
            let Some(payment) = &mut self.payment else {
                continue;
            };
            if let Some(collector) = &mut payment.collector {
                let end = press.start().after(press.duration());
                let at = self.clock.map(now, ssrc, end);
                collector.handle_key(at, press.key());
            }
        }
        self.pump();
    }

    /// Invokes `function` on this call: a payment session starts.
    pub fn invoke(
        &mut self,
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
        });
        self.pump();
        Ok(())
    }

    /// The start connection's result.
    pub fn start_result(&mut self, result: Result<serde_json::Value, StartFailure>) {
        self.input(Input::StartResult(result));
    }

    /// An agent action on the active session.
    pub fn agent_action(&mut self, now: Instant, action: AgentAction) -> Result<(), ActionRefused> {
        let Some(payment) = &mut self.payment else {
            return Err(ActionRefused {
                action: "act",
                state: "none",
                reason: "no payment session on this call",
            });
        };
        let result = payment.session.handle_input(Input::Agent(action));
        self.pump_at(now);
        result
    }

    /// The processor's outcome for the session.
    pub fn payment_outcome(&mut self, outcome: PaymentOutcome) {
        self.input(Input::Payment(outcome));
    }

    /// The caller hung up (`DELETE /v1/calls/{id}`, or no media).
    pub fn hang_up(&mut self) {
        self.end(Input::HangUp);
    }

    /// The gateway is shutting down and ends the call; an open session fails as
    /// `internal-error` rather than `caller-hung-up`.
    pub fn shut_down(&mut self) {
        self.end(Input::Shutdown);
    }

    fn end(&mut self, why: Input) {
        if self.ended {
            return;
        }
        self.ended = true;
        if let Some(payment) = &mut self.payment {
            let _ = payment.session.handle_input(why);
        }
        self.decoder.finish();
        for listener in self.listeners.values_mut() {
            if let Some(audio) = listener.audio.as_mut() {
                audio.finish();
            }
        }
        self.pump();
    }

    fn input(&mut self, input: Input) {
        if let Some(payment) = &mut self.payment {
            let _ = payment.session.handle_input(input);
        }
        self.pump();
    }

    /// When [`handle_timeout`](Self::handle_timeout) should be called.
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
            self.decoder.poll_timeout(),
            collector,
            Some(self.last_packet + self.config.no_media_timeout),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Fires whatever is due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.ended {
            return;
        }
        if now >= self.last_packet + self.config.no_media_timeout {
            self.outputs.push_back(CallOutput::HungUp);
            self.hang_up();
            return;
        }
        self.decoder.handle_timeout(now);
        self.drain_decoder(now);
        let at = self.clock.now(now);
        if let Some(collector) = self.payment.as_mut().and_then(|p| p.collector.as_mut()) {
            collector.handle_timeout(at);
        }
        self.pump();
    }

    /// The next output.
    pub fn poll_output(&mut self) -> Option<CallOutput> {
        self.outputs.pop_front()
    }

    fn pump(&mut self) {
        self.pump_at(self.last_packet);
    }

    /// Moves collector events into the session and session outputs out, until both are quiet.
    fn pump_at(&mut self, now: Instant) {
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
                    Output::Collector(command) => match command {
                        CollectorCommand::Start(config) => match Collector::new(config) {
                            Ok(mut collector) => {
                                collector.start(media_now);
                                payment.collector = Some(collector);
                            }
                            Err(e) => {
                                tracing::error!(session = %session, error = %e, "collector refused its configuration");
                            }
                        },
                        CollectorCommand::Pause => {
                            if let Some(c) = &mut payment.collector {
                                c.pause(media_now);
                            }
                        }
                        CollectorCommand::Resume => {
                            if let Some(c) = &mut payment.collector {
                                c.resume(media_now);
                            }
                        }
                        CollectorCommand::DifferentCard => {
                            if let Some(c) = &mut payment.collector {
                                c.different_card(media_now);
                            }
                        }
                        CollectorCommand::Cancel => {
                            if let Some(mut c) = payment.collector.take() {
                                c.cancel();
                            }
                        }
                    },
                    Output::Pay(request) => {
                        match payment.collector.as_mut().and_then(Collector::take_card) {
                            Some(card) => self.outputs.push_back(CallOutput::Pay {
                                session,
                                card,
                                request,
                            }),
                            None => {
                                tracing::error!(session = %session, "payment requested without a collected card");
                                let _ = payment.session.handle_input(Input::Payment(
                                    PaymentOutcome::Failed {
                                        card: tonegate_pci::MaskedCard {
                                            payment_type: tonegate_pci::PaymentType::CreditCard,
                                            brand: None,
                                            last4: String::new(),
                                        },
                                        reason: tonegate_pci::FailedReason::ProcessorError,
                                        decline_code: None,
                                        message: "no card".into(),
                                    },
                                ));
                            }
                        }
                    }
                }
            }
            if !moved {
                break;
            }
        }
    }
}
