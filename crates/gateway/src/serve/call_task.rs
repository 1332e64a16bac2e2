//! The task that runs one call: its UDP socket, its [`Call`], the commands of the HTTP
//! handlers, and the outputs carried out (forwarded RTP, agent events, the start connection,
//! the processor, success and failure deliveries, metrics).

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};
use tonegate_call::{Call, CallCounters, CallError, CallInput, CallOutput, InvokeError};
use tonegate_control::config::Function;
use tonegate_control::session::{
    ActionRefused, AgentAction, ConnectionKind, Invocation, StartFailure,
};
use tonegate_pci::{pay, PaymentOutcome};

use super::gateway::Gateway;
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
}

pub(super) async fn run_call(
    gateway: Arc<Gateway>,
    id: String,
    socket: UdpSocket,
    mut call: Call,
    commands: mpsc::UnboundedSender<CallCommand>,
    mut inbox: mpsc::UnboundedReceiver<CallCommand>,
) {
    let mut buf = vec![0u8; 2048];
    let mut function: Option<Arc<Function>> = None;
    let mut in_flight = 0usize;
    let mut counted = CallCounters::default();
    loop {
        let deadline = call.poll_timeout().map(tokio::time::Instant::from_std);
        tokio::select! {
            received = socket.recv_from(&mut buf) => {
                if let Ok((n, _from)) = received {
                    if let Err(e) = call.handle_input(Instant::now(), CallInput::Rtp(&buf[..n])) {
                        tracing::debug!(call = %id, error = %e, "datagram refused");
                    }
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
        while let Some(output) = call.poll_output() {
            match output {
                CallOutput::Forward(to, bytes) => {
                    let _ = socket.send_to(&bytes, to).await;
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
