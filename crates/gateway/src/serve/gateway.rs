//! The running gateway's shared state: functions, the processor, the deliverer, the calls and
//! their sessions (with each session's event history and broadcast), RTP ports, metrics; and
//! its start and graceful stop.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use axum::http::StatusCode;
use axum::response::Response;
use tokio::net::UdpSocket;
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tonegate_control::config::Function;
use tonegate_control::session::{AgentEvent, State};
use tonegate_pci::{Processor, YearMonth};

use super::call_task::CallCommand;
use super::config::{ServeConfig, EXAMPLE_FUNCTION};
use super::delivery::{Deliver, OutboxDelivery};
use super::error::error;
use super::http::router;
use crate::metrics::{Metrics, OutcomeLabels, StateLabels};
use crate::outbox::{Backoff, Outbox, Policy};

pub(super) struct CallHandle {
    pub(super) commands: mpsc::UnboundedSender<CallCommand>,
    pub(super) rtp: SocketAddr,
}

/// A call created over ng, by its SIP Call-ID: its legs' tags and tonegate's socket for each
/// side.
pub(super) struct NgCall {
    /// tonegate's call id.
    pub(super) call: String,
    /// The offerer's SIP tag (the From tag of the first offer).
    pub(super) offerer_tag: String,
    /// The answerer's SIP tag, once an answer gave it.
    pub(super) answerer_tag: Option<String>,
    /// Where the offerer sends its media (written in the answers it gets).
    pub(super) offerer_local: SocketAddr,
    /// Where the answerer sends its media (written in the offers it gets).
    pub(super) answerer_local: SocketAddr,
    /// Whether the offerer is the caller (whose keys are collected); else the answerer is.
    pub(super) caller_is_offerer: bool,
    /// When the offer came.
    pub(super) created: SystemTime,
    /// When the last offer or answer came.
    pub(super) last_signal: SystemTime,
    /// The call task.
    pub(super) commands: mpsc::UnboundedSender<CallCommand>,
}

pub(super) struct SessionEntry {
    pub(super) call: String,
    pub(super) state: State,
    pub(super) history: Vec<AgentEvent>,
    pub(super) events: broadcast::Sender<AgentEvent>,
}

/// The running gateway's shared state.
pub struct Gateway {
    pub(super) config: ServeConfig,
    pub(super) functions: BTreeMap<String, Arc<Function>>,
    pub(super) processor: Arc<dyn Processor>,
    pub(super) client: reqwest::Client,
    pub(super) deliver: Arc<dyn Deliver>,
    pub(super) outbox: Option<Arc<Outbox>>,
    pub(super) calls: Mutex<HashMap<String, CallHandle>>,
    /// Calls created over ng, by SIP Call-ID.
    pub(super) ng_calls: Mutex<HashMap<String, NgCall>>,
    /// When the gateway started (ng `statistics`: uptime).
    pub(super) started: SystemTime,
    pub(super) sessions: Mutex<HashMap<String, SessionEntry>>,
    pub(super) next_id: AtomicU64,
    /// Where the next search for a free port in `rtp_ports` starts.
    pub(super) next_rtp_port: AtomicU64,
    pub(super) draining: AtomicBool,
    /// Every call's in-band detector settings (the kernel chosen at start).
    pub(super) inband: tonegate_media::inband::InbandConfig,
    /// Prometheus metrics.
    pub metrics: Metrics,
}

/// A gateway serving HTTP, and how to stop it.
pub struct Running {
    /// The HTTP address (useful when configured with port 0).
    pub addr: SocketAddr,
    /// The ng listener's address, when `ng_listen` is set.
    pub ng_addr: Option<SocketAddr>,
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
        mut config: ServeConfig,
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
        if config.processor.is_sandbox() {
            if !config.listen.ip().is_loopback() && !config.allow_sandbox {
                anyhow::bail!(
                    "the processor is the sandbox (test cards; every other valid card is approved) \
                     and the gateway listens on {}: configure `processor` for real payments, or set \
                     `allow_sandbox: true` for a test deployment",
                    config.listen
                );
            }
            tracing::warn!(
                "the processor is the sandbox: no card is charged, every valid card it does not know is approved"
            );
        }
        config
            .processor
            .resolve_secrets(super::config::resolve_secret_reference)?;
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
        let ng_socket = match config.ng_listen {
            Some(at) => Some(
                UdpSocket::bind(at)
                    .await
                    .map_err(|e| anyhow::anyhow!("cannot listen for ng on {at}: {e}"))?,
            ),
            None => None,
        };
        let ng_addr = ng_socket.as_ref().map(UdpSocket::local_addr).transpose()?;
        let gateway = Arc::new(Gateway {
            config,
            functions,
            processor,
            client,
            deliver,
            outbox,
            calls: Mutex::new(HashMap::new()),
            ng_calls: Mutex::new(HashMap::new()),
            started: SystemTime::now(),
            sessions: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            next_rtp_port: AtomicU64::new(0),
            inband: crate::inband_config_from_env()?,
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
        if let Some(socket) = ng_socket {
            tokio::spawn(super::ng::run(gateway.clone(), socket, worker.clone()));
            tracing::info!(ng = %ng_addr.expect("bound"), "ng control protocol listening");
        }
        tracing::info!(%addr, "tonegate serving");
        Ok(Running {
            addr,
            ng_addr,
            gateway,
            shutdown: tx,
            server,
            worker,
        })
    }

    /// A new id: `prefix` and 128 random bits. Session references are unguessable and unique
    /// across processes and restarts (a processor's idempotency key is derived from them).
    pub(super) fn id(&self, prefix: &str) -> String {
        self.next_id.fetch_add(1, Ordering::Relaxed);
        format!("{prefix}_{:032x}", rand::random::<u128>())
    }

    /// New calls and sessions are refused while draining (after SIGTERM).
    pub(super) fn refuse_if_draining(&self) -> Option<Response> {
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

    pub(super) fn publish(&self, session: &str, event: AgentEvent) {
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
    pub(super) fn today() -> YearMonth {
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

/// A UDP socket for a new call's RTP on `rtp_ip`: any free port, or the next free even port of
/// `rtp_ports`. The error says why none could be had.
pub(super) async fn bind_rtp(g: &Gateway) -> Result<UdpSocket, String> {
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

/// How many times [`bind_rtp_pair`] asks the system for a port before it gives up, without
/// `rtp_ports`: each try fails only when the port next to the one given is taken.
const PAIR_ATTEMPTS: usize = 32;

/// Two UDP sockets for an anchored leg on `rtp_ip`: RTP on an even port and RTCP on the port
/// above (RFC 3550 §11), so that an endpoint that does not mux RTCP and reads no `a=rtcp:`
/// finds tonegate's RTCP where it looks. With `rtp_ports`, its next even port whose odd
/// neighbour is free (the odd port above the range's last even one may lie just outside it);
/// without, ports the system gives, until one's neighbour is free too, a bounded number of
/// times. The error says why no pair could be had.
pub(super) async fn bind_rtp_pair(g: &Gateway) -> Result<(UdpSocket, UdpSocket), String> {
    let ip = g.config.rtp_ip;
    let bind = |port: u16| UdpSocket::bind(SocketAddr::new(ip, port));
    let Some(range) = g.config.rtp_ports else {
        for _ in 0..PAIR_ATTEMPTS {
            let given = bind(0)
                .await
                .map_err(|e| format!("no RTP port on {ip}: {e}"))?;
            let port = given
                .local_addr()
                .map_err(|e| format!("no RTP port on {ip}: {e}"))?
                .port();
            if port % 2 == 0 {
                // An even port is at most 65534: the one above exists.
                if let Ok(rtcp) = bind(port + 1).await {
                    return Ok((given, rtcp));
                }
            } else if port > 1 {
                // An odd port given is the RTCP half of the pair below it.
                if let Ok(rtp) = bind(port - 1).await {
                    return Ok((rtp, given));
                }
            }
        }
        return Err(format!(
            "no RTP and RTCP port pair on {ip}: {PAIR_ATTEMPTS} ports given had their neighbour taken"
        ));
    };
    let count = range.even_count();
    for _ in 0..count {
        let i = g.next_rtp_port.fetch_add(1, Ordering::Relaxed) as usize % count;
        let port = range.even_port(i).expect("i < count");
        let rtp = match bind(port).await {
            Ok(socket) => socket,
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => continue,
            Err(e) => return Err(format!("no RTP port on {ip}:{port}: {e}")),
        };
        match bind(port + 1).await {
            Ok(rtcp) => return Ok((rtp, rtcp)),
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => continue,
            Err(e) => return Err(format!("no RTCP port on {ip}:{}: {e}", port + 1)),
        }
    }
    Err(format!(
        "no free RTP and RTCP port pair: all {count} even ports of rtp_ports {range} on {ip} \
         or their odd neighbours are in use"
    ))
}
