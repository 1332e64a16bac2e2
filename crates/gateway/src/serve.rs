//! `tonegate serve`: calls on UDP, the telephony and agent APIs on HTTP, connections delivered.
//!
//! ```text
//!  telephony side (SBC, PBX)        agent side (LLM agent)              customer's endpoints
//!  POST /v1/calls (SDP offer) ─┐    GET  /v1/functions                  start (sync, timeout)
//!  DELETE /v1/calls/{id}      ─┤    POST /v1/calls/{id}/sessions ─┐      success / failure
//!                              ▼    GET  /v1/sessions/{id}[/events]│        (delivered by
//!                         call task ◄── POST /v1/sessions/{id}/actions      the outbox)
//!          UDP socket ──► (Call: media -> pci -> control) ──► agent events (SSE), connections,
//!                                                              tonegate_pci::pay (processor)
//! ```
//!
//! One tokio task per call owns its [`Call`] and its UDP socket; the HTTP handlers talk to it
//! through a channel. Agent events go to a per-session broadcast (with history, so a stream
//! opened late sees everything). Success and failure connections go to a [`Deliver`]er: the
//! durable outbox (`crate::outbox`, SQLite under `data_dir`) unless a test injects another.

use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::rejection::JsonRejection;
use axum::extract::{DefaultBodyLimit, Path as UrlPath, Request, State as AxumState};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use futures_util::stream::{self, Stream, StreamExt};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio::net::UdpSocket;
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tonegate_control::config::{Connection, Function};
use tonegate_control::session::{
    ActionRefused, AgentAction, AgentEvent, ConnectionKind, Invocation, StartFailure, State,
};
use tonegate_control::tools::{anthropic_tools, openai_tools};
use tonegate_pci::processor::config::ProcessorConfig;
use tonegate_pci::{pay, PaymentOutcome, Processor, YearMonth};

use crate::call::{Call, CallConfig, CallCounters, CallOutput, InvokeError, MediaMode};
use crate::connection::call_start;
use crate::metrics::{Metrics, OutcomeLabels, SourceLabels, StateLabels};
use crate::outbox::{Backoff, DeliveryKind, NewDelivery, Outbox, Policy};
use crate::sdp::Offer;

/// The gateway's settings. Every field has a default; `docs/serve.md` lists them with their
/// environment variables.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServeConfig {
    /// HTTP listen address (`TONEGATE_LISTEN`), default 127.0.0.1:8080.
    pub listen: SocketAddr,
    /// Address RTP sockets bind to and SDP answers carry (`TONEGATE_RTP_IP`), default 127.0.0.1.
    pub rtp_ip: IpAddr,
    /// UDP ports calls' RTP sockets take, `FIRST-LAST` (`TONEGATE_RTP_PORTS`); default none:
    /// the OS picks any free port.
    pub rtp_ports: Option<PortRange>,
    /// Bearer tokens of the telephony side (`TONEGATE_TELEPHONY_TOKEN`).
    pub telephony_tokens: Vec<String>,
    /// Bearer tokens of the agent side (`TONEGATE_AGENT_TOKEN`).
    pub agent_tokens: Vec<String>,
    /// Function files (`TONEGATE_FUNCTIONS`, comma-separated); default: the embedded example.
    pub functions: Vec<PathBuf>,
    /// The processor connector; default the sandbox.
    pub processor: ProcessorConfig,
    /// Where the database lives (`TONEGATE_DATA_DIR`), default `./data`.
    pub data_dir: PathBuf,
    /// Seconds without media after which a call is hung up, default 30.
    pub no_media_timeout_seconds: u64,
    /// Largest request body accepted, in bytes, default 65536.
    pub body_limit_bytes: usize,
    /// On SIGTERM, how long active sessions may take to finish, in seconds, default 30.
    pub shutdown_deadline_seconds: f64,
    /// How long a call's sessions stay readable after the call ends, in seconds, default 600.
    pub session_retention_seconds: u64,
    /// Success/failure deliveries: the first retry waits up to this many milliseconds (then
    /// doubling, with full jitter), default 1000.
    pub webhook_backoff_base_ms: u64,
    /// Success/failure deliveries: the longest wait between attempts, in seconds, default 300.
    pub webhook_backoff_cap_seconds: u64,
    /// Success/failure deliveries: retried until this many hours after the session ended,
    /// default 24.
    pub webhook_deadline_hours: f64,
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            listen: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 8080),
            rtp_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            rtp_ports: None,
            telephony_tokens: Vec::new(),
            agent_tokens: Vec::new(),
            functions: Vec::new(),
            processor: ProcessorConfig::default(),
            data_dir: PathBuf::from("data"),
            no_media_timeout_seconds: 30,
            body_limit_bytes: 64 * 1024,
            shutdown_deadline_seconds: 30.0,
            session_retention_seconds: 600,
            webhook_backoff_base_ms: 1000,
            webhook_backoff_cap_seconds: 300,
            webhook_deadline_hours: 24.0,
        }
    }
}

/// An inclusive range of UDP ports for calls' RTP sockets (`rtp_ports: 20000-29999`). Calls
/// take its even ports only (RFC 3550 §11: RTP on an even port, RTCP on the odd one above,
/// which firewall rules and SBCs often assume), in turn, skipping ports in use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PortRange {
    /// First port of the range.
    pub first: u16,
    /// Last port of the range (inclusive).
    pub last: u16,
}

impl PortRange {
    /// The even ports of the range, in order.
    pub fn even_ports(&self) -> impl Iterator<Item = u16> {
        let range = *self;
        (0..range.even_count()).filter_map(move |i| range.even_port(i))
    }

    /// How many even ports the range holds.
    fn even_count(&self) -> usize {
        let first = u32::from(self.first).next_multiple_of(2);
        (u32::from(self.last) + 1).saturating_sub(first).div_ceil(2) as usize
    }

    /// The `i`th even port of the range.
    fn even_port(&self, i: usize) -> Option<u16> {
        let first = u32::from(self.first).next_multiple_of(2);
        u16::try_from(first + 2 * i as u32)
            .ok()
            .filter(|&p| p <= self.last)
    }
}

impl std::fmt::Display for PortRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.first, self.last)
    }
}

impl std::str::FromStr for PortRange {
    type Err = String;

    fn from_str(s: &str) -> Result<PortRange, String> {
        let shape = || format!("`{s}`: expected FIRST-LAST, e.g. 20000-29999");
        let (a, b) = s.trim().split_once('-').ok_or_else(shape)?;
        let port = |v: &str| v.trim().parse::<u16>().ok().filter(|&p| p > 0);
        let (Some(first), Some(last)) = (port(a), port(b)) else {
            return Err(format!("{}; ports are 1-65535", shape()));
        };
        let range = PortRange { first, last };
        if first > last {
            return Err(format!("`{s}`: the first port is above the last"));
        }
        if range.even_ports().next().is_none() {
            return Err(format!("`{s}`: no even port in it (RTP takes even ports)"));
        }
        Ok(range)
    }
}

impl<'de> Deserialize<'de> for PortRange {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<PortRange, D::Error> {
        let s = String::deserialize(d)?;
        s.parse()
            .map_err(|e| serde::de::Error::custom(format!("rtp_ports {e}")))
    }
}

/// A UDP socket for a new call's RTP on `rtp_ip`: any free port, or the next free even port of
/// `rtp_ports`. The error says why none could be had.
async fn bind_rtp(g: &Gateway) -> Result<UdpSocket, String> {
    let ip = g.config.rtp_ip;
    let Some(range) = g.config.rtp_ports else {
        return UdpSocket::bind(SocketAddr::new(ip, 0))
            .await
            .map_err(|e| format!("no RTP port on {ip}: {e}"));
    };
    // Index arithmetic, not a list: a range of 10,000 ports is not collected per call.
    let count = range.even_count();
    for _ in 0..count {
        let i = g.next_rtp_port.fetch_add(1, Ordering::Relaxed) as usize % count;
        let port = range.even_port(i).expect("i < count");
        match UdpSocket::bind(SocketAddr::new(ip, port)).await {
            Ok(socket) => return Ok(socket),
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => continue,
            Err(e) => return Err(format!("no RTP port on {ip}:{port}: {e}")),
        }
    }
    Err(format!(
        "no free RTP port: all {count} even ports of rtp_ports {range} on {ip} are in use"
    ))
}

/// The example function `serve` runs with when none is configured: its connections point at
/// the stand-in endpoints `tonegate demo` starts on 127.0.0.1:8081.
pub const EXAMPLE_FUNCTION: &str = "name: collect_payment
purpose: Collects a card payment for the caller's outstanding order once they agree to pay.
set_variables:
  order_id: '{{ vars.get(\"order_id\", \"10482\") }}'
connections:
  start:
    url: http://127.0.0.1:8081/start
  success:
    url: http://127.0.0.1:8081/success
  failure:
    url: http://127.0.0.1:8081/failure
";

impl ServeConfig {
    /// Reads a YAML config file (or the defaults), then applies the environment.
    pub fn load(path: Option<&Path>) -> anyhow::Result<ServeConfig> {
        let mut config: ServeConfig = match path {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
                serde_yaml_ng::from_str(&text)
                    .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?
            }
            None => ServeConfig::default(),
        };
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        if let Some(v) = env("TONEGATE_LISTEN") {
            config.listen = v
                .parse()
                .map_err(|e| anyhow::anyhow!("TONEGATE_LISTEN `{v}`: {e}"))?;
        }
        if let Some(v) = env("TONEGATE_RTP_IP") {
            config.rtp_ip = v
                .parse()
                .map_err(|e| anyhow::anyhow!("TONEGATE_RTP_IP `{v}`: {e}"))?;
        }
        if let Some(v) = env("TONEGATE_RTP_PORTS") {
            config.rtp_ports = Some(
                v.parse()
                    .map_err(|e| anyhow::anyhow!("TONEGATE_RTP_PORTS: {e}"))?,
            );
        }
        if let Some(v) = env("TONEGATE_TELEPHONY_TOKEN") {
            config.telephony_tokens = vec![v];
        }
        if let Some(v) = env("TONEGATE_AGENT_TOKEN") {
            config.agent_tokens = vec![v];
        }
        if let Some(v) = env("TONEGATE_FUNCTIONS") {
            config.functions = v.split(',').map(PathBuf::from).collect();
        }
        if let Some(v) = env("TONEGATE_DATA_DIR") {
            config.data_dir = PathBuf::from(v);
        }
        Ok(config)
    }
}

/// Where success and failure connections go (the durable outbox in production).
pub trait Deliver: Send + Sync {
    /// Hands over one connection body; exactly one call per session and kind.
    fn deliver(&self, session: &str, kind: ConnectionKind, connection: &Connection, body: Value);
}

/// The durable outbox as the gateway's deliverer: a delivery is committed to the database
/// before `deliver` returns, then sent by the outbox's worker.
struct OutboxDelivery(Arc<Outbox>);

impl Deliver for OutboxDelivery {
    fn deliver(&self, session: &str, kind: ConnectionKind, connection: &Connection, body: Value) {
        let Ok(kind) = DeliveryKind::try_from(kind) else {
            return;
        };
        let delivery = NewDelivery {
            session_reference: session.to_owned(),
            kind,
            connection: connection.clone(),
            body,
        };
        if let Err(e) = self.0.enqueue_blocking(delivery) {
            tracing::error!(%session, error = %e, "cannot store a connection delivery");
        }
    }
}

enum CallCommand {
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

struct CallHandle {
    commands: mpsc::UnboundedSender<CallCommand>,
    rtp: SocketAddr,
}

struct SessionEntry {
    call: String,
    state: State,
    history: Vec<AgentEvent>,
    events: broadcast::Sender<AgentEvent>,
}

/// The running gateway's shared state.
pub struct Gateway {
    config: ServeConfig,
    functions: BTreeMap<String, Arc<Function>>,
    processor: Arc<dyn Processor>,
    client: reqwest::Client,
    deliver: Arc<dyn Deliver>,
    outbox: Option<Arc<Outbox>>,
    calls: Mutex<HashMap<String, CallHandle>>,
    sessions: Mutex<HashMap<String, SessionEntry>>,
    next_id: AtomicU64,
    /// Where the next search for a free port in `rtp_ports` starts.
    next_rtp_port: AtomicU64,
    draining: AtomicBool,
    /// Prometheus metrics.
    pub metrics: Metrics,
}

/// A gateway serving HTTP, and how to stop it.
pub struct Running {
    /// The HTTP address (useful when configured with port 0).
    pub addr: SocketAddr,
    /// The shared state.
    pub gateway: Arc<Gateway>,
    shutdown: oneshot::Sender<()>,
    server: tokio::task::JoinHandle<()>,
    worker: CancellationToken,
}

impl Running {
    /// Graceful shutdown (SIGTERM): new calls and sessions are refused (`/readyz` says
    /// draining), active sessions may finish for up to `shutdown_deadline_seconds`, then the
    /// calls still up are hung up, open event streams end, and the server stops.
    pub async fn stop(self) {
        let deadline = Duration::from_secs_f64(self.gateway.config.shutdown_deadline_seconds);
        self.gateway.draining.store(true, Ordering::SeqCst);
        let until = tokio::time::Instant::now() + deadline;
        while tokio::time::Instant::now() < until && self.gateway.active_sessions() > 0 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let calls: Vec<mpsc::UnboundedSender<CallCommand>> = self
            .gateway
            .calls
            .lock()
            .expect("not poisoned")
            .values()
            .map(|c| c.commands.clone())
            .collect();
        for call in calls {
            let _ = call.send(CallCommand::ShutDown);
        }
        // Let the hang-ups reach the event streams, then stop serving.
        let settle = tokio::time::Instant::now() + Duration::from_secs(2);
        while tokio::time::Instant::now() < settle && self.gateway.active_sessions() > 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let _ = self.shutdown.send(());
        let mut server = self.server;
        if tokio::time::timeout(Duration::from_secs(2), &mut server)
            .await
            .is_err()
        {
            server.abort();
        }
        // Last chance for the connections of the sessions that just ended; what cannot be
        // delivered now stays in the database for the next start.
        if let Some(outbox) = &self.gateway.outbox {
            if let Err(e) = outbox.flush(Duration::from_secs(5)).await {
                tracing::warn!(error = %e, "outbox flush failed");
            }
        }
        self.worker.cancel();
        // Tasks may still hold the gateway a while (a session's retention timer): the database
        // is free for the next gateway now.
        if let Some(outbox) = &self.gateway.outbox {
            outbox.release();
        }
    }
}

impl Gateway {
    /// Loads functions and the processor, binds the HTTP listener and starts serving.
    pub async fn start(
        config: ServeConfig,
        deliver: Option<Arc<dyn Deliver>>,
    ) -> anyhow::Result<Running> {
        let mut functions = BTreeMap::new();
        if config.functions.is_empty() {
            let f = Function::from_str(
                EXAMPLE_FUNCTION,
                tonegate_control::config::Format::Yaml,
                Path::new("<embedded example>"),
            )?;
            functions.insert(f.name.clone(), Arc::new(f));
        }
        for path in &config.functions {
            let f = crate::read_function(path)?;
            if functions.contains_key(&f.name) {
                anyhow::bail!(
                    "{}: function name `{}` is used twice",
                    path.display(),
                    f.name
                );
            }
            functions.insert(f.name.clone(), Arc::new(f));
        }
        let processor: Arc<dyn Processor> = Arc::from(config.processor.build()?);
        let client = crate::connection::client();
        let (deliver, outbox): (Arc<dyn Deliver>, Option<Arc<Outbox>>) = match deliver {
            Some(deliver) => (deliver, None),
            None => {
                let policy = Policy {
                    backoff: Backoff {
                        base: Duration::from_millis(config.webhook_backoff_base_ms),
                        cap: Duration::from_secs(config.webhook_backoff_cap_seconds),
                        ..Backoff::default()
                    },
                    deadline: Duration::from_secs_f64(config.webhook_deadline_hours * 3600.0),
                    ..Policy::default()
                };
                let outbox = Arc::new(Outbox::open(config.data_dir.join("tonegate.db"), policy)?);
                (Arc::new(OutboxDelivery(outbox.clone())), Some(outbox))
            }
        };
        let worker = CancellationToken::new();
        if let Some(outbox) = &outbox {
            tokio::spawn(outbox.clone().run(worker.clone()));
        }
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", config.listen))?;
        let addr = listener.local_addr()?;
        let gateway = Arc::new(Gateway {
            config,
            functions,
            processor,
            client,
            deliver,
            outbox,
            calls: Mutex::new(HashMap::new()),
            sessions: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            next_rtp_port: AtomicU64::new(0),
            draining: AtomicBool::new(false),
            metrics: Metrics::default(),
        });
        let app = router(gateway.clone());
        let (tx, rx) = oneshot::channel::<()>();
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await;
        });
        tracing::info!(%addr, "tonegate serving");
        Ok(Running {
            addr,
            gateway,
            shutdown: tx,
            server,
            worker,
        })
    }

    fn id(&self, prefix: &str) -> String {
        let n = self.next_id.fetch_add(1, Ordering::Relaxed);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        format!("{prefix}_{n:x}{nanos:08x}")
    }

    /// New calls and sessions are refused while draining (after SIGTERM).
    fn refuse_if_draining(&self) -> Option<Response> {
        self.draining.load(Ordering::SeqCst).then(|| {
            error(
                StatusCode::SERVICE_UNAVAILABLE,
                "the gateway is shutting down",
            )
        })
    }

    /// Sessions not yet ended.
    pub fn active_sessions(&self) -> usize {
        self.sessions
            .lock()
            .expect("not poisoned")
            .values()
            .filter(|e| !e.state.is_terminal())
            .count()
    }

    fn publish(&self, session: &str, event: AgentEvent) {
        let mut sessions = self.sessions.lock().expect("not poisoned");
        if let Some(entry) = sessions.get_mut(session) {
            match &event {
                AgentEvent::StateChanged { to, .. } => {
                    entry.state = *to;
                    self.metrics
                        .session_states
                        .get_or_create(&StateLabels {
                            state: to.as_str().to_owned(),
                        })
                        .inc();
                }
                AgentEvent::Outcome {
                    state,
                    failed_reason,
                    ..
                } => {
                    entry.state = *state;
                    self.metrics
                        .session_outcomes
                        .get_or_create(&OutcomeLabels {
                            state: state.as_str().to_owned(),
                            reason: failed_reason
                                .map(|r| r.as_str().to_owned())
                                .unwrap_or_default(),
                        })
                        .inc();
                }
                _ => {}
            }
            entry.history.push(event.clone());
            let _ = entry.events.send(event);
        }
    }

    /// Today's month for expiry checks, from the system clock (UTC).
    fn today() -> YearMonth {
        let days = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() / 86_400)
            .unwrap_or(0) as i64;
        // Civil-from-days (Howard Hinnant's algorithm).
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let month = if mp < 10 { mp + 3 } else { mp - 9 };
        let year = yoe + era * 400 + i64::from(month <= 2);
        YearMonth::new(year as u16, month as u8).expect("a valid month")
    }
}

async fn run_call(
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
                    if let Err(e) = call.handle_rtp(Instant::now(), &buf[..n]) {
                        tracing::debug!(call = %id, error = %e, "datagram refused");
                    }
                }
            }
            command = inbox.recv() => {
                let Some(command) = command else { break };
                match command {
                    CallCommand::Invoke { function: f, reference, invocation, reply } => {
                        let result = call.invoke(f.clone(), reference, invocation, Gateway::today());
                        if result.is_ok() {
                            function = Some(f);
                        }
                        let _ = reply.send(result);
                    }
                    CallCommand::Start(result) => {
                        in_flight -= 1;
                        call.start_result(result);
                    }
                    CallCommand::Action { action, reply } => {
                        let _ = reply.send(call.agent_action(Instant::now(), action));
                    }
                    CallCommand::Payment(outcome) => {
                        in_flight -= 1;
                        call.payment_outcome(outcome);
                    }
                    CallCommand::HangUp => call.hang_up(),
                    CallCommand::ShutDown => call.shut_down(),
                }
            }
            _ = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d).await,
                    None => std::future::pending().await,
                }
            } => call.handle_timeout(Instant::now()),
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

fn router(gateway: Arc<Gateway>) -> Router {
    let limit = gateway.config.body_limit_bytes;
    let telephony = Router::new()
        .route("/v1/calls", post(create_call))
        .route("/v1/calls/{id}", delete(end_call))
        .route_layer(middleware::from_fn_with_state(
            gateway.clone(),
            telephony_auth,
        ));
    let agent = Router::new()
        .route("/v1/functions", get(list_functions))
        .route("/v1/calls/{id}/sessions", post(invoke))
        .route("/v1/sessions/{id}", get(session_state))
        .route("/v1/sessions/{id}/events", get(session_events))
        .route("/v1/sessions/{id}/actions", post(session_action))
        .route_layer(middleware::from_fn_with_state(gateway.clone(), agent_auth));
    Router::new()
        .merge(telephony)
        .merge(agent)
        .route("/healthz", get(|| async { "ok" }))
        .route("/metrics", get(metrics))
        .route(
            "/openapi.json",
            get(|| async { Json(<ApiDoc as utoipa::OpenApi>::openapi()) }),
        )
        .route("/readyz", get(readyz))
        .layer(DefaultBodyLimit::max(limit))
        .with_state(gateway)
}

fn authorized(tokens: &[String], request: &Request) -> bool {
    let Some(value) = request.headers().get(header::AUTHORIZATION) else {
        return false;
    };
    let Some(token) = value.to_str().ok().and_then(|v| v.strip_prefix("Bearer ")) else {
        return false;
    };
    tokens
        .iter()
        .any(|t| constant_time_eq(t.as_bytes(), token.as_bytes()))
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The request goes on with a token of `tokens`; otherwise an empty 401.
async fn with_token(tokens: &[String], request: Request, next: Next) -> Response {
    if authorized(tokens, &request) {
        next.run(request).await
    } else {
        StatusCode::UNAUTHORIZED.into_response()
    }
}

async fn telephony_auth(
    AxumState(g): AxumState<Arc<Gateway>>,
    request: Request,
    next: Next,
) -> Response {
    with_token(&g.config.telephony_tokens, request, next).await
}

async fn agent_auth(
    AxumState(g): AxumState<Arc<Gateway>>,
    request: Request,
    next: Next,
) -> Response {
    with_token(&g.config.agent_tokens, request, next).await
}

async fn metrics(AxumState(g): AxumState<Arc<Gateway>>) -> Response {
    if let Some(outbox) = &g.outbox {
        if let Ok(stats) = outbox.stats().await {
            g.metrics.outbox_depth.set(stats.pending as i64);
            g.metrics.outbox_retries.set(stats.retries as i64);
        }
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        g.metrics.encode(),
    )
        .into_response()
}

async fn readyz(AxumState(g): AxumState<Arc<Gateway>>) -> Response {
    if g.draining.load(Ordering::SeqCst) {
        (StatusCode::SERVICE_UNAVAILABLE, "draining").into_response()
    } else {
        "ready".into_response()
    }
}

/// An API error: a status and a message a person can act on.
fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (
        status,
        Json(ApiError {
            error: message.into(),
        }),
    )
        .into_response()
}

/// A body that is not the JSON expected: 400 with serde's words (which say what and where),
/// 413 when too large, 415 without a JSON content type.
fn bad_json(rejection: JsonRejection) -> Response {
    let status = match rejection.status() {
        StatusCode::UNPROCESSABLE_ENTITY => StatusCode::BAD_REQUEST,
        other => other,
    };
    error(status, rejection.body_text())
}

/// `POST /v1/calls`: a media leg.
#[derive(Debug, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateCall {
    /// An SDP offer (PCMU or PCMA, telephone-event); the answer carries the gateway's port.
    #[serde(default)]
    pub sdp: Option<String>,
    /// Simple mode: the telephone-event payload type (default 101) when there is no SDP.
    #[serde(default)]
    pub event_payload_type: Option<u8>,
    /// Simple mode: the audio codec, `PCMU` (default) or `PCMA`.
    #[serde(default)]
    pub codec: Option<String>,
    /// Simple mode: the audio payload type (default 0 for PCMU, 8 for PCMA).
    #[serde(default)]
    pub audio_payload_type: Option<u8>,
    /// `fork` (default: receive a copy, forward nothing) or `relay`.
    #[serde(default)]
    pub mode: Option<String>,
    /// Relay mode: where to forward the caller's media (`ip:port`).
    #[serde(default)]
    #[schema(value_type = Option<String>, example = "127.0.0.1:40000")]
    pub relay_to: Option<SocketAddr>,
}

/// Creates a media leg from an SDP offer (or simple JSON) and answers with the gateway's RTP
/// address.
#[utoipa::path(post, path = "/v1/calls", request_body = CreateCall, responses(
    (status = 201, body = CallCreated), (status = 400, body = ApiError), (status = 401),
    (status = 503, body = ApiError, description = "shutting down, or no RTP port")))]
async fn create_call(
    AxumState(g): AxumState<Arc<Gateway>>,
    body: Result<Json<CreateCall>, JsonRejection>,
) -> Response {
    let Json(body) = match body {
        Ok(b) => b,
        Err(e) => return bad_json(e),
    };
    if let Some(refused) = g.refuse_if_draining() {
        return refused;
    }
    let mut config = CallConfig {
        no_media_timeout: Duration::from_secs(g.config.no_media_timeout_seconds),
        ..CallConfig::default()
    };
    let offer = match &body.sdp {
        Some(sdp) => match Offer::parse(sdp) {
            Ok(offer) => {
                if !offer.telephone_event.is_empty() {
                    config.event_payload_types = offer.telephone_event.clone();
                }
                if offer.codec.1 == "PCMA" {
                    config.audio.pcma_payload_types = vec![offer.codec.0];
                    config.audio.pcmu_payload_types = Vec::new();
                } else {
                    config.audio.pcmu_payload_types = vec![offer.codec.0];
                    config.audio.pcma_payload_types = Vec::new();
                }
                config.red_payload_types = offer.red.clone();
                Some(offer)
            }
            Err(e) => return error(StatusCode::BAD_REQUEST, e.to_string()),
        },
        None => {
            if let Some(pt) = body.event_payload_type {
                if pt > 127 {
                    return error(StatusCode::BAD_REQUEST, "event_payload_type must be 0-127");
                }
                config.event_payload_types = vec![pt];
            }
            let (pcmu, default_pt) = match body
                .codec
                .as_deref()
                .map(str::to_ascii_uppercase)
                .as_deref()
            {
                None | Some("PCMU") => (true, 0),
                Some("PCMA") => (false, 8),
                Some(other) => {
                    return error(
                        StatusCode::BAD_REQUEST,
                        format!("codec `{other}`: tonegate speaks PCMU and PCMA"),
                    )
                }
            };
            let pt = body.audio_payload_type.unwrap_or(default_pt);
            if pt > 127 {
                return error(StatusCode::BAD_REQUEST, "audio_payload_type must be 0-127");
            }
            if pcmu {
                config.audio.pcmu_payload_types = vec![pt];
                config.audio.pcma_payload_types = Vec::new();
            } else {
                config.audio.pcma_payload_types = vec![pt];
                config.audio.pcmu_payload_types = Vec::new();
            }
            None
        }
    };
    config.mode = match (body.mode.as_deref(), body.relay_to) {
        (None | Some("fork"), _) => MediaMode::Fork,
        (Some("relay"), Some(to)) => MediaMode::Relay(to),
        (Some("relay"), None) => {
            return error(StatusCode::BAD_REQUEST, "relay mode needs relay_to")
        }
        (Some(other), _) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("mode `{other}`: use fork or relay"),
            )
        }
    };
    let socket = match bind_rtp(&g).await {
        Ok(s) => s,
        Err(e) => return error(StatusCode::SERVICE_UNAVAILABLE, e),
    };
    let rtp = socket.local_addr().expect("bound");
    let id = g.id("call");
    let answer = offer.map(|o| {
        o.answer(
            rtp,
            g.next_id.load(Ordering::Relaxed),
            matches!(config.mode, MediaMode::Relay(_)),
        )
    });
    let (tx, rx) = mpsc::unbounded_channel();
    g.calls.lock().expect("not poisoned").insert(
        id.clone(),
        CallHandle {
            commands: tx.clone(),
            rtp,
        },
    );
    let call = Call::new(config, Instant::now());
    g.metrics.calls.inc();
    g.metrics.active_calls.inc();
    tokio::spawn(run_call(g.clone(), id.clone(), socket, call, tx, rx));
    tracing::info!(call = %id, %rtp, "call created");
    (
        StatusCode::CREATED,
        Json(CallCreated {
            call_id: id,
            rtp: rtp.to_string(),
            sdp: answer,
        }),
    )
        .into_response()
}

/// Hangs up a call.
#[utoipa::path(delete, path = "/v1/calls/{id}", params(("id" = String, Path)), responses(
    (status = 204), (status = 401), (status = 404, body = ApiError)))]
async fn end_call(AxumState(g): AxumState<Arc<Gateway>>, UrlPath(id): UrlPath<String>) -> Response {
    let sent = g
        .calls
        .lock()
        .expect("not poisoned")
        .get(&id)
        .map(|c| c.commands.send(CallCommand::HangUp).is_ok());
    match sent {
        Some(true) => StatusCode::NO_CONTENT.into_response(),
        _ => error(StatusCode::NOT_FOUND, format!("no call `{id}`")),
    }
}

/// The configured functions as LLM tool definitions (OpenAI and Anthropic shapes).
#[utoipa::path(get, path = "/v1/functions", responses((status = 200, description = "`{\"functions\": [{\"name\", \"openai\": [...], \"anthropic\": [...]}]}`"), (status = 401)))]
async fn list_functions(AxumState(g): AxumState<Arc<Gateway>>) -> Response {
    let functions: Vec<Value> = g
        .functions
        .values()
        .map(|f| json!({ "name": f.name, "openai": openai_tools(f), "anthropic": anthropic_tools(f) }))
        .collect();
    Json(json!({ "functions": functions })).into_response()
}

/// `POST /v1/calls/{id}/sessions`: invoke a function on a call.
#[derive(Debug, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InvokeRequest {
    /// The function's name.
    pub function: String,
    /// Input parameters (checked against the input schema).
    #[serde(default)]
    #[schema(value_type = Object)]
    pub params: serde_json::Map<String, Value>,
    /// Reference variables.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub refs: serde_json::Map<String, Value>,
    /// Input variables.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub vars: serde_json::Map<String, Value>,
}

/// Invokes a function on a call: a payment session starts.
#[utoipa::path(post, path = "/v1/calls/{id}/sessions", params(("id" = String, Path)), request_body = InvokeRequest, responses(
    (status = 201, body = SessionCreated), (status = 400, body = ApiError), (status = 401),
    (status = 404, body = ApiError), (status = 409, body = ApiError, description = "a session is already active, or the call ended"),
    (status = 422, body = ApiError, description = "params do not match the input schema")))]
async fn invoke(
    AxumState(g): AxumState<Arc<Gateway>>,
    UrlPath(call_id): UrlPath<String>,
    body: Result<Json<InvokeRequest>, JsonRejection>,
) -> Response {
    let Json(body) = match body {
        Ok(b) => b,
        Err(e) => return bad_json(e),
    };
    if let Some(refused) = g.refuse_if_draining() {
        return refused;
    }
    let Some(function) = g.functions.get(&body.function).cloned() else {
        return error(
            StatusCode::NOT_FOUND,
            format!("no function `{}`", body.function),
        );
    };
    let Some(commands) = g
        .calls
        .lock()
        .expect("not poisoned")
        .get(&call_id)
        .map(|c| c.commands.clone())
    else {
        return error(StatusCode::NOT_FOUND, format!("no call `{call_id}`"));
    };
    let reference = g.id("ps");
    let (events, _) = broadcast::channel(256);
    g.sessions.lock().expect("not poisoned").insert(
        reference.clone(),
        SessionEntry {
            call: call_id.clone(),
            state: State::Starting,
            history: Vec::new(),
            events,
        },
    );
    let (reply, answer) = oneshot::channel();
    let sent = commands.send(CallCommand::Invoke {
        function,
        reference: reference.clone(),
        invocation: Invocation {
            params: body.params,
            refs: body.refs,
            vars: body.vars,
        },
        reply,
    });
    let result = match sent {
        Ok(()) => answer.await.unwrap_or(Err(InvokeError::CallEnded)),
        Err(_) => Err(InvokeError::CallEnded),
    };
    match result {
        Ok(()) => {
            g.metrics.sessions.inc();
            (
                StatusCode::CREATED,
                Json(SessionCreated {
                    session_reference_id: reference,
                    call_id,
                }),
            )
                .into_response()
        }
        Err(e) => {
            g.sessions.lock().expect("not poisoned").remove(&reference);
            let status = match e {
                InvokeError::InvalidParams(_) => StatusCode::UNPROCESSABLE_ENTITY,
                _ => StatusCode::CONFLICT,
            };
            error(status, e.to_string())
        }
    }
}

/// A session's state, masked card and outcome.
#[utoipa::path(get, path = "/v1/sessions/{id}", params(("id" = String, Path)), responses(
    (status = 200, description = "`{session_reference_id, call_id, state, card, outcome}`"), (status = 401), (status = 404, body = ApiError)))]
async fn session_state(
    AxumState(g): AxumState<Arc<Gateway>>,
    UrlPath(id): UrlPath<String>,
) -> Response {
    let sessions = g.sessions.lock().expect("not poisoned");
    let Some(entry) = sessions.get(&id) else {
        return error(StatusCode::NOT_FOUND, format!("no session `{id}`"));
    };
    let card = entry.history.iter().rev().find_map(|e| match e {
        AgentEvent::MaskedSummary { card } => Some(card.clone()),
        AgentEvent::Outcome { card, .. } => card.clone(),
        _ => None,
    });
    let outcome = entry
        .history
        .iter()
        .rev()
        .find(|e| matches!(e, AgentEvent::Outcome { .. }));
    Json(json!({
        "session_reference_id": id,
        "call_id": entry.call,
        "state": entry.state,
        "card": card,
        "outcome": outcome,
    }))
    .into_response()
}

/// The session's events as Server-Sent Events: every event so far, then live ones, ending with
/// the outcome. Each `data:` is a JSON agent event with a `type`: `say`, `state_changed`,
/// `field_started`, `field_progress`, `field_completed`, `field_rejected`, `masked_summary`,
/// `outcome`. Masked only.
#[utoipa::path(get, path = "/v1/sessions/{id}/events", params(("id" = String, Path)), responses(
    (status = 200, content_type = "text/event-stream", description = "the event stream"), (status = 401), (status = 404, body = ApiError)))]
async fn session_events(
    AxumState(g): AxumState<Arc<Gateway>>,
    UrlPath(id): UrlPath<String>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, Response> {
    let (history, live) = {
        let sessions = g.sessions.lock().expect("not poisoned");
        let Some(entry) = sessions.get(&id) else {
            return Err(error(StatusCode::NOT_FOUND, format!("no session `{id}`")));
        };
        (entry.history.clone(), entry.events.subscribe())
    };
    let ended = history
        .iter()
        .any(|e| matches!(e, AgentEvent::Outcome { .. }));
    let to_event = |e: AgentEvent| {
        Ok::<_, Infallible>(Event::default().json_data(&e).expect("events serialize"))
    };
    let past = stream::iter(history.into_iter().map(to_event));
    let live = tokio_stream::wrappers::BroadcastStream::new(live)
        .filter_map(|e| async move { e.ok() })
        .take_while(|e| {
            let last = matches!(e, AgentEvent::Outcome { .. });
            async move { !last }
        });
    // The outcome itself ends the stream: send it, then stop.
    let live: std::pin::Pin<Box<dyn Stream<Item = Result<Event, Infallible>> + Send>> = if ended {
        Box::pin(stream::empty())
    } else {
        let g2 = g.clone();
        let id2 = id.clone();
        Box::pin(live.map(to_event).chain(stream::once(async move {
            let outcome = g2
                .sessions
                .lock()
                .expect("not poisoned")
                .get(&id2)
                .and_then(|e| {
                    e.history
                        .iter()
                        .rev()
                        .find(|e| matches!(e, AgentEvent::Outcome { .. }))
                        .cloned()
                });
            Ok(match outcome {
                Some(o) => Event::default().json_data(&o).expect("events serialize"),
                None => Event::default().comment("stream ended"),
            })
        })))
    };
    Ok(Sse::new(past.chain(live)).keep_alive(KeepAlive::default()))
}

/// `POST /v1/sessions/{id}/actions`.
#[derive(Debug, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ActionRequest {
    /// `confirm_amount`, `confirm_card`, `decline`, `cancel`, `pause`, `resume`,
    /// `different_card`.
    #[schema(value_type = String, example = "confirm_amount")]
    pub action: AgentAction,
}

/// A created media leg.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CallCreated {
    /// The call's id.
    pub call_id: String,
    /// Where to send the caller's RTP.
    pub rtp: String,
    /// The SDP answer, when an offer was given.
    pub sdp: Option<String>,
}

/// A started payment session.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SessionCreated {
    /// The session's reference (`session_reference_id` on the connections).
    pub session_reference_id: String,
    /// The call it runs on.
    pub call_id: String,
}

/// An error: what is wrong, for a person.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ApiError {
    /// The message.
    pub error: String,
}

/// The tonegate HTTP API, generated from the handlers below.
#[derive(utoipa::OpenApi)]
#[openapi(
    info(title = "tonegate", description = "DTMF gateway for secure voice payments: the telephony side (media legs) and the agent side (payment sessions). Every /v1 route needs a bearer token: a telephony token for /v1/calls and DELETE /v1/calls/{id}, an agent token for the rest."),
    paths(create_call, end_call, list_functions, invoke, session_state, session_events, session_action),
    components(schemas(CreateCall, CallCreated, InvokeRequest, SessionCreated, ActionRequest, ApiError)),
    modifiers(&BearerAuth),
    security(("bearer" = []))
)]
pub struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// An agent action: `confirm_amount`, `confirm_card`, `decline`, `cancel`, `pause`, `resume`,
/// `different_card`.
#[utoipa::path(post, path = "/v1/sessions/{id}/actions", params(("id" = String, Path)), request_body = ActionRequest, responses(
    (status = 200, description = "`{\"state\": ...}`"), (status = 400, body = ApiError), (status = 401), (status = 404, body = ApiError),
    (status = 409, body = ApiError, description = "refused in the session's state, with the reason")))]
async fn session_action(
    AxumState(g): AxumState<Arc<Gateway>>,
    UrlPath(id): UrlPath<String>,
    body: Result<Json<ActionRequest>, JsonRejection>,
) -> Response {
    let Json(body) = match body {
        Ok(b) => b,
        Err(e) => return bad_json(e),
    };
    let call = g
        .sessions
        .lock()
        .expect("not poisoned")
        .get(&id)
        .map(|e| e.call.clone());
    let Some(call) = call else {
        return error(StatusCode::NOT_FOUND, format!("no session `{id}`"));
    };
    let commands = g
        .calls
        .lock()
        .expect("not poisoned")
        .get(&call)
        .map(|c| c.commands.clone());
    let Some(commands) = commands else {
        return error(StatusCode::CONFLICT, "the call has ended");
    };
    let (reply, answer) = oneshot::channel();
    if commands
        .send(CallCommand::Action {
            action: body.action,
            reply,
        })
        .is_err()
    {
        return error(StatusCode::CONFLICT, "the call has ended");
    }
    match answer.await {
        Ok(Ok(())) => {
            let state = g
                .sessions
                .lock()
                .expect("not poisoned")
                .get(&id)
                .map(|e| e.state);
            Json(json!({ "state": state })).into_response()
        }
        Ok(Err(refused)) => error(StatusCode::CONFLICT, refused.to_string()),
        Err(_) => error(StatusCode::CONFLICT, "the call has ended"),
    }
}

impl Gateway {
    /// The RTP address of a call, for tests and the demo.
    pub fn rtp_of(&self, call: &str) -> Option<SocketAddr> {
        self.calls
            .lock()
            .expect("not poisoned")
            .get(call)
            .map(|c| c.rtp)
    }
}
