//! The task that runs one call: its UDP sockets (the caller's leg, and for an anchored call the
//! agent's), its [`Call`], the commands of the HTTP and ng handlers, and the outputs carried
//! out (forwarded RTP, agent events, the start connection, the processor, success and failure
//! deliveries, metrics).
//!
//! An anchored call (the ng protocol) has two legs, each latched to its first source
//! ([`Leg`]): what the caller sends goes through the [`Call`] (heard, collected, masked) and
//! out of the agent's socket; what the agent's leg sends goes out of the caller's socket as it
//! came. RTCP on a leg's own RTCP socket (no rtcp-mux) goes out of the other leg's, as it came
//! ([`Leg::rtcp_route`]).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::sync::{mpsc, oneshot};
use tonegate_call::{Call, CallCounters, CallError, CallInput, CallOutput, InvokeError};
use tonegate_control::config::Function;
use tonegate_control::session::{
    ActionRefused, AgentAction, ConnectionKind, Invocation, StartFailure,
};
use tonegate_pci::{pay, PaymentOutcome};

use super::gateway::Gateway;
use super::leg::{Heard, Leg, LegStats};
use crate::connection::call_start;
use crate::metrics::SourceLabels;

/// What the HTTP handlers ask of a call's task.
pub(super) enum CallCommand {
    Invoke {
        function: Arc<Function>,
        reference: String,
        invocation: Invocation,
        reply: oneshot::Sender<Result<(), InvokeError>>,
    },
    Start(Result<Value, StartFailure>),
    Action {
        action: AgentAction,
        reply: oneshot::Sender<Result<(), ActionRefused>>,
    },
    Payment(PaymentOutcome),
    HangUp,
    /// The gateway is shutting down: end the call, its session failing as `internal-error`.
    ShutDown,
    /// Anchored calls: a leg's SDP gives its address (an offer, an answer, a re-INVITE).
    Advertise {
        /// Which leg.
        leg: Role,
        /// Its address, `None` when the SDP gives none (on hold).
        address: Option<SocketAddr>,
        /// Where it receives RTCP when it does not mux.
        rtcp: Option<SocketAddr>,
        /// Whether its SDP says it muxes RTCP (an offer's is settled by the answer).
        rtcp_mux: bool,
    },
    /// Anchored calls: the answer to a leg's offer says whether RTCP is muxed.
    RtcpMuxAnswered {
        /// The offerer's leg.
        leg: Role,
        /// Whether the answer it gets carries `a=rtcp-mux`.
        mux: bool,
    },
    /// Force masking on (`block DTMF`) or stop forcing it.
    BlockDtmf(bool),
    /// Telephone-event and red payload types the caller may send (from the agent leg's SDP).
    PayloadTypes {
        event: Vec<u8>,
        red: Vec<u8>,
    },
    /// The call's counters (the ng `query`).
    Query(oneshot::Sender<CallStats>),
}

/// The legs of an anchored call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Role {
    /// The caller: collected and masked.
    Caller,
    /// The agent: relayed untouched.
    Agent,
}

impl Role {
    /// The offerer's role in an ng call.
    pub(super) fn of_offerer(caller_is_offerer: bool) -> Role {
        if caller_is_offerer {
            Role::Caller
        } else {
            Role::Agent
        }
    }

    /// The other side's.
    pub(super) fn other(self) -> Role {
        match self {
            Role::Caller => Role::Agent,
            Role::Agent => Role::Caller,
        }
    }
}

/// What a call's sockets are.
pub(super) struct CallMedia {
    /// The caller's leg: its RTP goes through the call.
    pub(super) caller: Leg,
    /// Anchored calls: the agent's leg, relayed to the caller untouched; the caller's relayed
    /// media leaves through its socket.
    pub(super) agent: Option<Leg>,
    /// Anchored calls: the SIP Call-ID, whose ng entry goes when the call ends.
    pub(super) sip_call_id: Option<String>,
    /// Anchored calls: the no-media timeout that applies once media flows (the call is
    /// created with the longer offer timeout, for the time it rings).
    pub(super) media_timeout: Option<Duration>,
}

/// A call's counters, per leg.
#[derive(Clone, Debug)]
pub(super) struct CallStats {
    /// The caller's leg.
    pub(super) caller: LegStats,
    /// The agent's leg (anchored calls).
    pub(super) agent: Option<LegStats>,
    /// Key presses heard on the caller's leg (never which).
    pub(super) key_presses: u64,
}

impl CallMedia {
    /// The leg of `role`, if the call has it.
    fn leg_mut(&mut self, role: Role) -> Option<&mut Leg> {
        match role {
            Role::Caller => Some(&mut self.caller),
            Role::Agent => self.agent.as_mut(),
        }
    }
}

/// Receives on `leg`'s RTCP socket, or never when there is no such socket.
async fn receive_rtcp(leg: Option<&Leg>, buf: &mut [u8]) -> std::io::Result<(usize, SocketAddr)> {
    match leg.and_then(Leg::rtcp_socket) {
        Some(socket) => socket.recv_from(buf).await,
        None => std::future::pending().await,
    }
}

/// RTCP heard on `from`'s RTCP socket goes, untouched, to the other leg as it takes RTCP.
async fn relay_rtcp(
    gateway: &Gateway,
    id: &str,
    from: &mut Leg,
    to: Option<&Leg>,
    source: SocketAddr,
    datagram: &[u8],
) {
    match from.heard_rtcp(source, datagram) {
        Heard::Foreign => {
            gateway.metrics.rtp_foreign_source.inc();
            tracing::debug!(call = %id, from = %source, "RTCP from a foreign source refused");
        }
        Heard::NotMedia => {
            gateway.metrics.rtp_refused.inc();
        }
        Heard::Accepted => {
            if let Some((socket, at)) = to.and_then(Leg::rtcp_route) {
                let _ = socket.send_to(datagram, at).await;
            }
        }
    }
}

/// Receives on `leg`'s socket, or never when there is no such leg.
async fn receive(leg: Option<&Leg>, buf: &mut [u8]) -> std::io::Result<(usize, SocketAddr)> {
    match leg {
        Some(leg) => leg.socket.recv_from(buf).await,
        None => std::future::pending().await,
    }
}

pub(super) async fn run_call(
    gateway: Arc<Gateway>,
    id: String,
    mut media: CallMedia,
    mut call: Call,
    commands: mpsc::UnboundedSender<CallCommand>,
    mut inbox: mpsc::UnboundedReceiver<CallCommand>,
) {
    let mut buf = vec![0u8; 2048];
    let mut agent_buf = vec![0u8; 2048];
    let mut rtcp_buf = vec![0u8; 2048];
    let mut agent_rtcp_buf = vec![0u8; 2048];
    let mut function: Option<Arc<Function>> = None;
    let mut in_flight = 0usize;
    let mut counted = CallCounters::default();
    // Where the call relays the caller's media (anchored calls): the agent leg's endpoint.
    let mut relaying_to: Option<SocketAddr> = None;
    loop {
        // Media flows (a packet accepted on either leg): the call no longer rings.
        if media.media_timeout.is_some()
            && (media.caller.packets() > 0 || media.agent.as_ref().is_some_and(|a| a.packets() > 0))
        {
            if let Some(timeout) = media.media_timeout.take() {
                let _ = call.handle_input(Instant::now(), CallInput::NoMediaTimeout(timeout));
            }
        }
        let deadline = call.poll_timeout().map(tokio::time::Instant::from_std);
        tokio::select! {
            received = media.caller.socket.recv_from(&mut buf) => {
                if let Ok((n, from)) = received {
                    match media.caller.heard(from, &buf[..n]) {
                        Heard::Foreign => {
                            gateway.metrics.rtp_foreign_source.inc();
                            tracing::debug!(call = %id, %from, "datagram from a foreign source refused on the caller's leg");
                        }
                        Heard::Accepted | Heard::NotMedia => {
                            if let Err(e) = call.handle_input(Instant::now(), CallInput::Rtp(&buf[..n])) {
                                tracing::debug!(call = %id, error = %e, "datagram refused");
                            }
                        }
                    }
                }
            }
            received = receive(media.agent.as_ref(), &mut agent_buf) => {
                if let (Ok((n, from)), Some(agent)) = (received, media.agent.as_mut()) {
                    match agent.heard(from, &agent_buf[..n]) {
                        Heard::Foreign => {
                            gateway.metrics.rtp_foreign_source.inc();
                            tracing::debug!(call = %id, %from, "datagram from a foreign source refused on the agent's leg");
                        }
                        Heard::NotMedia => {
                            gateway.metrics.rtp_refused.inc();
                        }
                        Heard::Accepted => {
                            gateway.metrics.rtp_agent_packets.inc();
                            // The agent talking keeps the call up while the caller is silent.
                            let _ = call.handle_input(Instant::now(), CallInput::Activity);
                            // The agent's voice goes to the caller as it came.
                            if let Some(to) = media.caller.endpoint() {
                                let _ = media.caller.socket.send_to(&agent_buf[..n], to).await;
                            }
                        }
                    }
                }
            }
            received = receive_rtcp(Some(&media.caller), &mut rtcp_buf) => {
                if let Ok((n, from)) = received {
                    relay_rtcp(&gateway, &id, &mut media.caller, media.agent.as_ref(), from, &rtcp_buf[..n]).await;
                }
            }
            received = receive_rtcp(media.agent.as_ref(), &mut agent_rtcp_buf) => {
                if let (Ok((n, from)), Some(agent)) = (received, media.agent.as_mut()) {
                    relay_rtcp(&gateway, &id, agent, Some(&media.caller), from, &agent_rtcp_buf[..n]).await;
                }
            }
            command = inbox.recv() => {
                let Some(command) = command else { break };
                let now = Instant::now();
                match command {
                    CallCommand::Invoke { function: f, reference, invocation, reply } => {
                        let input = CallInput::Invoke {
                            function: f.clone(),
                            reference,
                            invocation,
                            today: Gateway::today(),
                        };
                        let result = match call.handle_input(now, input) {
                            Ok(()) => Ok(()),
                            Err(CallError::Invoke(e)) => Err(e),
                            Err(other) => unreachable!("an invocation fails only as InvokeError: {other}"),
                        };
                        if result.is_ok() {
                            function = Some(f);
                        }
                        let _ = reply.send(result);
                    }
                    CallCommand::Start(result) => {
                        in_flight -= 1;
                        let _ = call.handle_input(now, CallInput::StartResult(result));
                    }
                    CallCommand::Action { action, reply } => {
                        let result = match call.handle_input(now, CallInput::Agent(action)) {
                            Ok(()) => Ok(()),
                            Err(CallError::Action(refused)) => Err(refused),
                            Err(other) => unreachable!("an action fails only as ActionRefused: {other}"),
                        };
                        let _ = reply.send(result);
                    }
                    CallCommand::Payment(outcome) => {
                        in_flight -= 1;
                        let _ = call.handle_input(now, CallInput::Payment(outcome));
                    }
                    CallCommand::HangUp => {
                        let _ = call.handle_input(now, CallInput::HangUp);
                    }
                    CallCommand::ShutDown => {
                        let _ = call.handle_input(now, CallInput::ShutDown);
                    }
                    CallCommand::Advertise { leg, address, rtcp, rtcp_mux } => {
                        if let Some(leg) = media.leg_mut(leg) {
                            leg.advertise(address);
                            leg.advertise_rtcp(rtcp, rtcp_mux);
                        }
                    }
                    CallCommand::RtcpMuxAnswered { leg, mux } => {
                        if let Some(leg) = media.leg_mut(leg) {
                            leg.answered_rtcp_mux(mux);
                        }
                    }
                    CallCommand::BlockDtmf(on) => {
                        let _ = call.handle_input(now, CallInput::BlockDtmf(on));
                    }
                    CallCommand::PayloadTypes { event, red } => {
                        let _ = call.handle_input(now, CallInput::PayloadTypes { event, red });
                    }
                    CallCommand::Query(reply) => {
                        let counters = call.counters();
                        let _ = reply.send(CallStats {
                            caller: media.caller.stats(),
                            agent: media.agent.as_ref().map(Leg::stats),
                            key_presses: counters.presses + counters.presses_inband,
                        });
                    }
                }
            }
            _ = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d).await,
                    None => std::future::pending().await,
                }
            } => {
                let _ = call.handle_input(Instant::now(), CallInput::Timeout);
            }
        }
        // The agent's leg was heard (latched) or moved: the caller's media follows it.
        let agent_endpoint = media.agent.as_ref().and_then(Leg::endpoint);
        if agent_endpoint != relaying_to {
            if let Some(to) = agent_endpoint {
                let _ = call.handle_input(Instant::now(), CallInput::RelayTo(to));
            }
            relaying_to = agent_endpoint;
        }
        while let Some(output) = call.poll_output() {
            match output {
                CallOutput::Forward(to, bytes) => {
                    // Relayed media leaves through the socket the other side knows: the
                    // agent leg's for an anchored call, the caller's own for a relay.
                    let out = media.agent.as_ref().unwrap_or(&media.caller);
                    let _ = out.socket.send_to(&bytes, to).await;
                }
                CallOutput::Agent { session, event } => gateway.publish(&session, event),
                CallOutput::StartConnection { session: _, body } => {
                    let Some(f) = function.clone() else { continue };
                    let client = gateway.client.clone();
                    let tx = commands.clone();
                    in_flight += 1;
                    tokio::spawn(async move {
                        let result = call_start(&client, &f.connections.start, &body).await;
                        let _ = tx.send(CallCommand::Start(result));
                    });
                }
                CallOutput::Connection {
                    session,
                    kind,
                    body,
                } => {
                    let Some(f) = &function else { continue };
                    let connection = match kind {
                        ConnectionKind::Success => f.connections.success.as_ref(),
                        ConnectionKind::Failure => f.connections.failure.as_ref(),
                        ConnectionKind::Start => None,
                    };
                    if let Some(connection) = connection.cloned() {
                        // The outbox commits (an fsync) before `deliver` returns: do it on a
                        // blocking thread, not on a runtime worker that other calls share.
                        // This call still waits for it, so its outputs keep their order. One
                        // commit at a time (the store is behind a mutex anyway), so that many
                        // sessions ending together do not start a blocking thread each.
                        static COMMITS: tokio::sync::Semaphore =
                            tokio::sync::Semaphore::const_new(1);
                        let _one = COMMITS.acquire().await;
                        let deliver = gateway.deliver.clone();
                        let _ = tokio::task::spawn_blocking(move || {
                            deliver.deliver(&session, kind, &connection, body)
                        })
                        .await;
                    }
                }
                CallOutput::Pay {
                    session: _,
                    card,
                    request,
                } => {
                    let processor = gateway.processor.clone();
                    let tx = commands.clone();
                    in_flight += 1;
                    tokio::spawn(async move {
                        // The wall clock is read here, in the binary: pci takes it as an
                        // argument (the http connector's HMAC timestamp).
                        let now = std::time::SystemTime::now();
                        let outcome = pay(processor.as_ref(), card, &request, now).await;
                        let _ = tx.send(CallCommand::Payment(outcome));
                    });
                }
                CallOutput::KeyHeard(_) => {}
                CallOutput::HungUp => tracing::info!(call = %id, "no media: call hung up"),
            }
        }
        let now = call.counters();
        let m = &gateway.metrics;
        m.rtp_packets.inc_by(now.packets - counted.packets);
        m.rtp_refused.inc_by(now.refused - counted.refused);
        m.rtp_lost.inc_by(now.lost.saturating_sub(counted.lost));
        m.rtp_scrubbed.inc_by(now.scrubbed - counted.scrubbed);
        m.key_presses
            .get_or_create(&SourceLabels {
                source: "rfc4733".into(),
            })
            .inc_by(now.presses - counted.presses);
        m.key_presses
            .get_or_create(&SourceLabels {
                source: "inband".into(),
            })
            .inc_by(now.presses_inband - counted.presses_inband);
        counted = now;
        if call.is_ended() && in_flight == 0 {
            break;
        }
    }
    gateway.metrics.active_calls.dec();
    gateway.calls.lock().expect("not poisoned").remove(&id);
    if let Some(sip_call_id) = &media.sip_call_id {
        let mut ng_calls = gateway.ng_calls.lock().expect("not poisoned");
        // Only this call's entry: a new call may have taken the Call-ID since a delete.
        if ng_calls.get(sip_call_id).is_some_and(|c| c.call == id) {
            ng_calls.remove(sip_call_id);
        }
    }
    tracing::info!(call = %id, "call ended");
    // The call's sessions stay readable (`GET /v1/sessions/{id}`, late event streams) for a
    // while, then go: a long-running gateway must not keep every session's history.
    let retention = Duration::from_secs(gateway.config.session_retention_seconds);
    tokio::spawn(async move {
        tokio::time::sleep(retention).await;
        gateway
            .sessions
            .lock()
            .expect("not poisoned")
            .retain(|_, entry| entry.call != id);
    });
}
