//! The durable outbox seen from outside: real HTTP receivers (axum on 127.0.0.1), a real
//! SQLite file, restarts, an aborted worker and a real `kill -9` of a child process.
//!
//! Every wait is bounded; nothing leaves the loopback interface.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method as HttpMethod, StatusCode, Uri};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;
use tonegate::outbox::{
    Backoff, DeliveryKind, DeliveryState, Enqueued, Jitter, NewDelivery, Outbox, OutboxError,
    Policy,
};
use tonegate_control::config::{Auth, Connection, Method};
use tonegate_control::session::ConnectionKind;
use tonegate_testkit::logs::LogCapture;

// ---------------------------------------------------------------------------------------------
// Receivers

/// One request a receiver got.
#[derive(Clone, Debug)]
struct Hit {
    at: Instant,
    method: String,
    path: String,
    headers: HeaderMap,
    body: Value,
    status: u16,
}

#[derive(Default)]
struct Receiver {
    hits: Mutex<Vec<Hit>>,
    /// Answer 503 to this many requests before answering 200.
    fail_first: AtomicUsize,
}

/// A success/failure endpoint that records what it receives.
#[derive(Clone)]
struct Endpoint(Arc<Receiver>);

async fn receive(
    State(receiver): State<Arc<Receiver>>,
    method: HttpMethod,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let failing = receiver
        .fail_first
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok();
    let status = if failing {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    receiver.hits.lock().unwrap().push(Hit {
        at: Instant::now(),
        method: method.to_string(),
        path: uri.path().to_owned(),
        headers,
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
        status: status.as_u16(),
    });
    status
}

impl Endpoint {
    /// Serves on 127.0.0.1:`port` (0: any free port); returns the port.
    async fn start(port: u16, fail_first: usize) -> (Endpoint, u16) {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .unwrap();
        let port = listener.local_addr().unwrap().port();
        let receiver = Arc::new(Receiver::default());
        receiver.fail_first.store(fail_first, Ordering::SeqCst);
        let app = axum::Router::new()
            .fallback(receive)
            .with_state(Arc::clone(&receiver));
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (Endpoint(receiver), port)
    }

    fn hits(&self) -> Vec<Hit> {
        self.0.hits.lock().unwrap().clone()
    }

    /// 2xx-answered requests by (path, session_reference_id).
    fn delivered(&self) -> HashMap<(String, String), usize> {
        let mut counts = HashMap::new();
        for hit in self.hits().into_iter().filter(|h| h.status == 200) {
            let reference = hit.body["session_reference_id"]
                .as_str()
                .unwrap_or("<none>")
                .to_owned();
            *counts.entry((hit.path, reference)).or_default() += 1;
        }
        counts
    }
}

/// A port nothing listens on (connection refused), free to be bound later.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn url(port: u16, kind: DeliveryKind) -> String {
    format!("http://127.0.0.1:{port}/hooks/{kind}")
}

// ---------------------------------------------------------------------------------------------
// Deliveries

fn connection(url: String) -> Connection {
    Connection {
        url,
        method: Method::Post,
        headers: BTreeMap::new(),
        auth: None,
        timeout_ms: 2000,
        retries: None,
    }
}

/// A success body as `control::Session` builds it: Set variables, the reference, the
/// processor's ids, the masked card.
fn success_body(reference: &str) -> Value {
    json!({
        "order_id": "A-1001",
        "customer_id": "cus_77",
        "session_reference_id": reference,
        "processor_parameters": {"merchant": "m_1"},
        "transaction_id": format!("txn_{reference}"),
        "token_id": null,
        "card": {"payment_type": "credit-card", "brand": "visa", "last4": "4242"},
    })
}

/// A failure body as `control::Session` builds it.
fn failure_body(reference: &str) -> Value {
    json!({
        "order_id": "A-1002",
        "session_reference_id": reference,
        "processor_parameters": {},
        "failed_reason": "payment-declined",
    })
}

fn delivery(reference: &str, kind: DeliveryKind, port: u16) -> NewDelivery {
    NewDelivery {
        session_reference: reference.to_owned(),
        kind,
        connection: connection(url(port, kind)),
        body: match kind {
            DeliveryKind::Success => success_body(reference),
            DeliveryKind::Failure => failure_body(reference),
        },
    }
}

/// Short real backoffs: 50 ms doubling to 400 ms, full jitter.
fn fast() -> Policy {
    Policy {
        backoff: Backoff {
            base: Duration::from_millis(50),
            factor: 2.0,
            cap: Duration::from_millis(400),
            jitter: Jitter::Full,
        },
        deadline: Duration::from_secs(60),
        ..Policy::default()
    }
}

// ---------------------------------------------------------------------------------------------
// Files and waiting

/// A directory removed at the end of the test.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let dir = std::env::temp_dir().join(format!(
            "tonegate-outbox-{name}-{}-{nanos}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    /// The database path, in a subdirectory the outbox must create.
    fn db(&self) -> PathBuf {
        self.0.join("data").join("tonegate.db")
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Waits until `check` holds, for at most `secs` seconds.
async fn until<F, Fut>(what: &str, secs: u64, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let end = Instant::now() + Duration::from_secs(secs);
    while !check().await {
        assert!(
            Instant::now() < end,
            "timed out after {secs} s waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn pending(outbox: &Outbox) -> u64 {
    outbox.stats().await.unwrap().pending
}

async fn attempts(outbox: &Outbox, reference: &str, kind: DeliveryKind) -> u32 {
    outbox
        .delivery(reference, kind)
        .await
        .unwrap()
        .map_or(0, |r| r.attempts)
}

fn start_worker(outbox: &Arc<Outbox>) -> (CancellationToken, tokio::task::JoinHandle<()>) {
    let stop = CancellationToken::new();
    let worker = tokio::spawn(Arc::clone(outbox).run(stop.clone()));
    (stop, worker)
}

async fn stop_worker((stop, worker): (CancellationToken, tokio::task::JoinHandle<()>)) {
    stop.cancel();
    tokio::time::timeout(Duration::from_secs(10), worker)
        .await
        .expect("the worker stops within 10 s")
        .unwrap();
}

// ---------------------------------------------------------------------------------------------
// Tests

#[tokio::test]
async fn a_healthy_endpoint_receives_each_delivery_once_with_its_body_headers_and_auth() {
    let dir = TempDir::new("healthy");
    let (endpoint, port) = Endpoint::start(0, 0).await;
    let outbox = Arc::new(Outbox::open(dir.db(), fast()).unwrap());
    let worker = start_worker(&outbox);

    let mut success = delivery("ps_ok_1", DeliveryKind::Success, port);
    success.connection.method = Method::Put;
    success
        .connection
        .headers
        .insert("X-Shop".into(), "shop-1".into());
    success.connection.auth = Some(Auth::Bearer {
        token: "tok-secret".into(),
    });
    let mut failure = delivery("ps_ok_2", DeliveryKind::Failure, port);
    failure.connection.auth = Some(Auth::Basic {
        username: "shop".into(),
        password: "pw-secret".into(),
    });
    assert_eq!(
        outbox.enqueue(success.clone()).await.unwrap(),
        Enqueued::Queued
    );
    assert_eq!(
        outbox.enqueue(failure.clone()).await.unwrap(),
        Enqueued::Queued
    );

    until("both delivered", 10, || async {
        outbox.stats().await.unwrap().delivered == 2
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let hits = endpoint.hits();
    assert_eq!(hits.len(), 2, "each delivered exactly once: {hits:?}");

    let got = hits.iter().find(|h| h.path == "/hooks/success").unwrap();
    assert_eq!(got.method, "PUT");
    assert_eq!(got.body, success.body);
    assert_eq!(got.headers["x-shop"], "shop-1");
    assert_eq!(got.headers["authorization"], "Bearer tok-secret");
    assert_eq!(got.headers["content-type"], "application/json");

    let got = hits.iter().find(|h| h.path == "/hooks/failure").unwrap();
    assert_eq!(got.method, "POST");
    assert_eq!(got.body, failure.body);
    assert_eq!(got.headers["authorization"], "Basic c2hvcDpwdy1zZWNyZXQ=");

    let stats = outbox.stats().await.unwrap();
    assert_eq!((stats.pending, stats.delivered, stats.expired), (0, 2, 0));
    assert_eq!((stats.attempts, stats.retries), (2, 0));
    let record = outbox
        .delivery("ps_ok_1", DeliveryKind::Success)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record.state, DeliveryState::Delivered);
    assert_eq!(record.attempts, 1);
    stop_worker(worker).await;
}

#[tokio::test]
async fn a_503_endpoint_is_retried_with_growing_gaps_until_it_answers() {
    let dir = TempDir::new("503");
    let (endpoint, port) = Endpoint::start(0, 3).await;
    let policy = Policy {
        backoff: Backoff {
            base: Duration::from_millis(100),
            factor: 2.0,
            cap: Duration::from_secs(2),
            jitter: Jitter::None,
        },
        ..fast()
    };
    let outbox = Arc::new(Outbox::open(dir.db(), policy).unwrap());
    let worker = start_worker(&outbox);
    outbox
        .enqueue(delivery("ps_503", DeliveryKind::Success, port))
        .await
        .unwrap();

    until("delivered after three 503s", 10, || async {
        pending(&outbox).await == 0
    })
    .await;
    let hits = endpoint.hits();
    let statuses: Vec<u16> = hits.iter().map(|h| h.status).collect();
    assert_eq!(statuses, [503, 503, 503, 200]);
    let gaps: Vec<Duration> = hits.windows(2).map(|w| w[1].at - w[0].at).collect();
    // 100, 200 and 400 ms by the policy; the scheduling adds a little to each.
    assert!(gaps[0] >= Duration::from_millis(90), "{gaps:?}");
    assert!(
        gaps[1] > gaps[0] && gaps[2] > gaps[1],
        "gaps grow: {gaps:?}"
    );
    let record = outbox
        .delivery("ps_503", DeliveryKind::Success)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record.state, DeliveryState::Delivered);
    assert_eq!(record.attempts, 4);
    assert_eq!(record.last_error.as_deref(), Some("answered HTTP 503"));
    let stats = outbox.stats().await.unwrap();
    assert_eq!((stats.attempts, stats.retries), (4, 3));
    stop_worker(worker).await;
}

#[tokio::test]
async fn a_refused_connection_is_retried_and_delivered_once_the_endpoint_is_up() {
    let dir = TempDir::new("refused");
    let port = free_port();
    let outbox = Arc::new(Outbox::open(dir.db(), fast()).unwrap());
    let worker = start_worker(&outbox);
    outbox
        .enqueue(delivery("ps_down", DeliveryKind::Success, port))
        .await
        .unwrap();
    until("two refused attempts", 10, || async {
        attempts(&outbox, "ps_down", DeliveryKind::Success).await >= 2
    })
    .await;
    let record = outbox
        .delivery("ps_down", DeliveryKind::Success)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record.state, DeliveryState::Pending);
    assert!(
        record
            .last_error
            .as_deref()
            .unwrap()
            .starts_with("unreachable"),
        "{record:?}"
    );

    let (endpoint, _) = Endpoint::start(port, 0).await;
    until("delivered once up", 10, || async {
        pending(&outbox).await == 0
    })
    .await;
    assert_eq!(endpoint.hits().len(), 1);
    assert_eq!(
        outbox.stats().await.unwrap().delivered,
        1,
        "delivered, not expired"
    );
    stop_worker(worker).await;
}

/// Enqueued while the endpoint is down, the outbox closed, a new one opened on the same file:
/// delivered once per session reference.
#[tokio::test]
async fn a_restart_delivers_what_was_pending_once_per_session() {
    let dir = TempDir::new("restart");
    let port = free_port();
    let references = ["ps_rs_1", "ps_rs_2", "ps_rs_3"];
    {
        let outbox = Arc::new(Outbox::open(dir.db(), fast()).unwrap());
        let worker = start_worker(&outbox);
        for r in references {
            outbox
                .enqueue(delivery(r, DeliveryKind::Success, port))
                .await
                .unwrap();
        }
        outbox
            .enqueue(delivery("ps_rs_1", DeliveryKind::Failure, port))
            .await
            .unwrap();
        until("an attempt on each", 10, || async {
            outbox.stats().await.unwrap().attempts >= 4
        })
        .await;
        stop_worker(worker).await;
        let outbox = Arc::try_unwrap(outbox).expect("the worker let go of the outbox");
        drop(outbox);
    }

    let (endpoint, _) = Endpoint::start(port, 0).await;
    let outbox = Arc::new(Outbox::open(dir.db(), fast()).unwrap());
    assert_eq!(pending(&outbox).await, 4, "all four survived the restart");
    let worker = start_worker(&outbox);
    until("all delivered after the restart", 10, || async {
        pending(&outbox).await == 0
    })
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let delivered = endpoint.delivered();
    assert_eq!(delivered.len(), 4, "{delivered:?}");
    assert!(delivered.values().all(|&n| n == 1), "{delivered:?}");
    assert_eq!(
        delivered[&("/hooks/failure".to_owned(), "ps_rs_1".to_owned())],
        1
    );
    stop_worker(worker).await;
}

/// The worker task aborted while its requests hang (a stand-in for `kill -9` inside one
/// process): nothing was recorded, and the next outbox on the file delivers each once.
#[tokio::test]
async fn a_worker_aborted_mid_flight_loses_nothing() {
    let dir = TempDir::new("abort");
    // A receiver that accepts connections and never answers.
    let hang = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = hang.local_addr().unwrap().port();
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&accepted);
    let hanging = tokio::spawn(async move {
        let mut held = Vec::new();
        loop {
            let (socket, _) = hang.accept().await.unwrap();
            counter.fetch_add(1, Ordering::SeqCst);
            held.push(socket);
        }
    });

    let references = ["ps_ab_1", "ps_ab_2", "ps_ab_3"];
    {
        let outbox = Arc::new(Outbox::open(dir.db(), fast()).unwrap());
        let (_stop, worker) = start_worker(&outbox);
        for r in references {
            let mut d = delivery(r, DeliveryKind::Success, port);
            d.connection.timeout_ms = 30_000;
            outbox.enqueue(d).await.unwrap();
        }
        until("three requests in flight", 10, || async {
            accepted.load(Ordering::SeqCst) >= 3
        })
        .await;
        worker.abort();
        assert!(worker.await.unwrap_err().is_cancelled());
    }
    hanging.abort();
    let _ = hanging.await;

    let (endpoint, _) = Endpoint::start(port, 0).await;
    let outbox = Arc::new(Outbox::open(dir.db(), fast()).unwrap());
    for r in references {
        let record = outbox
            .delivery(r, DeliveryKind::Success)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(record.state, DeliveryState::Pending);
        assert_eq!(record.attempts, 0, "an aborted attempt is not recorded");
    }
    let worker = start_worker(&outbox);
    until("all delivered after the abort", 10, || async {
        pending(&outbox).await == 0
    })
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let delivered = endpoint.delivered();
    assert_eq!(delivered.len(), 3, "{delivered:?}");
    assert!(delivered.values().all(|&n| n == 1), "{delivered:?}");
    stop_worker(worker).await;
}

#[tokio::test]
async fn a_second_enqueue_of_the_same_session_and_kind_is_ignored() {
    let dir = TempDir::new("duplicate");
    let (endpoint, port) = Endpoint::start(0, 0).await;
    let outbox = Arc::new(Outbox::open(dir.db(), fast()).unwrap());
    let first = delivery("ps_dup", DeliveryKind::Success, port);
    assert_eq!(
        outbox
            .enqueue_blocking(delivery("ps_dup_sync", DeliveryKind::Success, port))
            .unwrap(),
        Enqueued::Queued
    );
    let mut second = first.clone();
    second.body["transaction_id"] = json!("txn_other");
    assert_eq!(
        outbox.enqueue(first.clone()).await.unwrap(),
        Enqueued::Queued
    );
    assert_eq!(
        outbox.enqueue_blocking(second.clone()).unwrap(),
        Enqueued::Duplicate,
        "the blocking enqueue keeps the same rule"
    );
    assert_eq!(outbox.enqueue(second).await.unwrap(), Enqueued::Duplicate);
    assert_eq!(
        outbox
            .enqueue(delivery("ps_dup", DeliveryKind::Failure, port))
            .await
            .unwrap(),
        Enqueued::Queued,
        "the other kind is another delivery"
    );
    assert_eq!(pending(&outbox).await, 3);

    let worker = start_worker(&outbox);
    until("all delivered", 10, || async {
        pending(&outbox).await == 0
    })
    .await;
    // Enqueued again after delivery: still the same delivery, not sent again.
    assert_eq!(
        outbox.enqueue(first.clone()).await.unwrap(),
        Enqueued::Duplicate
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    let hits = endpoint.hits();
    assert_eq!(hits.len(), 3);
    let success = hits
        .iter()
        .find(|h| h.path == "/hooks/success" && h.body["session_reference_id"] == "ps_dup")
        .unwrap();
    assert_eq!(success.body, first.body, "the first enqueue wins");
    stop_worker(worker).await;
}

#[tokio::test]
async fn an_enqueue_is_refused_when_the_body_names_another_session() {
    let dir = TempDir::new("mismatch");
    let outbox = Outbox::open(dir.db(), fast()).unwrap();
    let mut d = delivery("ps_a", DeliveryKind::Success, 9);
    d.body["session_reference_id"] = json!("ps_b");
    let err = outbox.enqueue(d).await.unwrap_err();
    assert!(
        matches!(err, OutboxError::ReferenceMismatch { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("ps_b") && err.to_string().contains("ps_a"));
    assert_eq!(pending(&outbox).await, 0);
    assert!(matches!(
        DeliveryKind::try_from(ConnectionKind::Start),
        Err(OutboxError::StartConnection)
    ));
    assert_eq!(
        DeliveryKind::try_from(ConnectionKind::Failure).unwrap(),
        DeliveryKind::Failure
    );
}

#[tokio::test]
async fn the_deadline_expires_a_delivery_that_never_succeeds() {
    let logs = LogCapture::new();
    // The test's runtime is single-threaded: the worker's tasks log on this thread.
    let _guard = tracing::subscriber::set_default(logs.subscriber());

    let dir = TempDir::new("deadline");
    let (endpoint, port) = Endpoint::start(0, usize::MAX).await;
    let policy = Policy {
        deadline: Duration::from_millis(700),
        ..fast()
    };
    let outbox = Arc::new(Outbox::open(dir.db(), policy).unwrap());
    let worker = start_worker(&outbox);
    let mut d = delivery("ps_expire", DeliveryKind::Success, port);
    d.connection.auth = Some(Auth::Bearer {
        token: "tok-never-logged".into(),
    });
    outbox.enqueue(d).await.unwrap();
    until("expired", 10, || async {
        outbox.stats().await.unwrap().expired == 1
    })
    .await;
    let record = outbox
        .delivery("ps_expire", DeliveryKind::Success)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record.state, DeliveryState::Expired);
    assert!(record.attempts >= 2, "{record:?}");
    assert!(
        record.last_attempt_at.unwrap() >= record.deadline,
        "tried until the deadline: {record:?}"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        endpoint.hits().len(),
        record.attempts as usize,
        "nothing sent after expiry"
    );
    assert_eq!(pending(&outbox).await, 0);
    stop_worker(worker).await;

    let logs = logs.text();
    let expired = logs
        .lines()
        .find(|l| l.contains("delivery expired"))
        .unwrap_or_else(|| panic!("no expiry line in:\n{logs}"));
    assert!(expired.contains("WARN"), "{expired}");
    assert!(expired.contains("ps_expire"), "{expired}");
    // Every crate logs at TRACE (hyper's connection pool too), so ports can hold any digits:
    // look for what only the body and the auth hold.
    for secret in [
        "last4",
        "credit-card",
        "txn_ps_expire",
        "tok-never-logged",
        "A-1001",
    ] {
        assert!(!logs.contains(secret), "`{secret}` logged:\n{logs}");
    }
}

#[tokio::test]
async fn a_connection_with_retries_set_stops_after_them() {
    let dir = TempDir::new("retries");
    let (endpoint, port) = Endpoint::start(0, usize::MAX).await;
    let outbox = Arc::new(Outbox::open(dir.db(), fast()).unwrap());
    let worker = start_worker(&outbox);
    let mut d = delivery("ps_retries", DeliveryKind::Failure, port);
    d.connection.retries = Some(2);
    outbox.enqueue(d).await.unwrap();
    until("expired", 10, || async {
        outbox.stats().await.unwrap().expired == 1
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(endpoint.hits().len(), 3, "one attempt and two retries");
    stop_worker(worker).await;
}

#[tokio::test]
async fn flush_tries_every_pending_delivery_now_and_keeps_its_deadline() {
    let dir = TempDir::new("flush");
    let (endpoint, port) = Endpoint::start(0, 0).await;
    let outbox = Arc::new(Outbox::open(dir.db(), fast()).unwrap());
    for r in ["ps_fl_1", "ps_fl_2", "ps_fl_3"] {
        outbox
            .enqueue(delivery(r, DeliveryKind::Success, port))
            .await
            .unwrap();
    }
    // No worker: flush alone sends them.
    let report = outbox.flush(Duration::from_secs(5)).await.unwrap();
    assert_eq!(report.attempted, 3);
    assert_eq!(report.delivered, 3);
    assert_eq!(report.pending, 0);
    assert!(!report.timed_out);
    assert_eq!(endpoint.hits().len(), 3);

    // A receiver that never answers: flush gives up at its deadline, the delivery stays.
    let hang = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hang_port = hang.local_addr().unwrap().port();
    let hanging = tokio::spawn(async move {
        let mut held = Vec::new();
        loop {
            held.push(hang.accept().await.unwrap());
        }
    });
    let mut d = delivery("ps_fl_hang", DeliveryKind::Success, hang_port);
    d.connection.timeout_ms = 30_000;
    outbox.enqueue(d).await.unwrap();
    let started = Instant::now();
    let report = outbox.flush(Duration::from_millis(300)).await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(3));
    assert!(report.timed_out);
    assert_eq!(
        (report.attempted, report.delivered, report.pending),
        (1, 0, 1)
    );
    assert_eq!(
        attempts(&outbox, "ps_fl_hang", DeliveryKind::Success).await,
        0
    );
    hanging.abort();
}

/// The bytes of the database and its WAL and shared-memory files.
fn raw_bytes(dir: &Path) -> Vec<u8> {
    let mut all = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        all.extend(std::fs::read(&path).unwrap());
    }
    all
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

/// Bodies as the control crate makes them for a session paid with 4242 4242 4242 4242,
/// expiry 07/31, security code 739, postal code 94107: the file holds none of these.
#[tokio::test]
async fn the_database_file_holds_no_card_data() {
    let dir = TempDir::new("masked");
    let secrets = [
        "4242424242424242",
        "4242 4242 4242 4242",
        "424242424242",
        "07/31",
        "0731",
        "2031",
        "739",
        "94107",
    ];
    // The URL (with its port) is stored: a port such as 27391 would hold a "secret".
    let port = loop {
        let (_endpoint, port) = Endpoint::start(0, 0).await;
        if !secrets.iter().any(|s| port.to_string().contains(s)) {
            break port;
        }
    };
    let outbox = Arc::new(Outbox::open(dir.db(), fast()).unwrap());
    for i in 0..4 {
        let reference = format!("ps_card_{i}");
        outbox
            .enqueue(delivery(&reference, DeliveryKind::Success, port))
            .await
            .unwrap();
        let mut failure = delivery(&reference, DeliveryKind::Failure, port);
        failure.body["card"] =
            json!({"payment_type": "credit-card", "brand": "visa", "last4": "4242"});
        outbox.enqueue(failure).await.unwrap();
    }
    let check = |when: &str| {
        let bytes = raw_bytes(&dir.0.join("data"));
        // The bodies are there: the search reads real content.
        assert!(contains(&bytes, "ps_card_3"), "{when}: bodies not found");
        assert!(contains(&bytes, "\"last4\":\"4242\""), "{when}");
        for secret in secrets {
            assert!(!contains(&bytes, secret), "{when}: `{secret}` in the file");
        }
    };
    check("pending");
    let report = outbox.flush(Duration::from_secs(5)).await.unwrap();
    assert_eq!(report.delivered, 8);
    check("delivered");
    drop(Arc::try_unwrap(outbox).unwrap());
    check("closed (WAL checkpointed)");
}

#[tokio::test]
async fn files_that_are_not_this_outbox_are_refused_with_the_path() {
    let dir = TempDir::new("refused-files");

    let garbage = dir.0.join("garbage.db");
    std::fs::write(&garbage, "not a database\n".repeat(400)).unwrap();
    let err = Outbox::open(&garbage, fast()).unwrap_err();
    assert!(matches!(err, OutboxError::NotADatabase { .. }), "{err:?}");
    assert!(err.to_string().contains("garbage.db"), "{err}");

    let foreign = dir.0.join("foreign.db");
    rusqlite::Connection::open(&foreign)
        .unwrap()
        .execute_batch("CREATE TABLE songs (title TEXT);")
        .unwrap();
    let err = Outbox::open(&foreign, fast()).unwrap_err();
    assert!(
        matches!(err, OutboxError::ForeignDatabase { .. }),
        "{err:?}"
    );

    let newer = dir.db();
    drop(Outbox::open(&newer, fast()).unwrap());
    rusqlite::Connection::open(&newer)
        .unwrap()
        .execute_batch("PRAGMA user_version = 2;")
        .unwrap();
    let err = Outbox::open(&newer, fast()).unwrap_err();
    assert!(
        matches!(
            err,
            OutboxError::SchemaVersion {
                found: 2,
                supported: 1,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("schema version 2"), "{err}");

    let under_a_file = garbage.join("data").join("tonegate.db");
    let err = Outbox::open(&under_a_file, fast()).unwrap_err();
    assert!(matches!(err, OutboxError::CreateDir { .. }), "{err:?}");
    assert!(err.to_string().contains("garbage.db"), "{err}");

    let bad = Policy {
        max_in_flight: 0,
        ..fast()
    };
    assert!(matches!(
        Outbox::open(dir.0.join("ok.db"), bad),
        Err(OutboxError::Policy(_))
    ));
}

// ---------------------------------------------------------------------------------------------
// kill -9

const CHILD_DB: &str = "TONEGATE_OUTBOX_KILL_CHILD_DB";
const CHILD_URL: &str = "TONEGATE_OUTBOX_KILL_CHILD_URL";

/// Not a test on its own: the child process of `kill_9_...` below (it returns at once
/// unless that test started it). It enqueues deliveries one after another, printing each
/// reference once its enqueue has returned, with its worker retrying them against a closed
/// port, until it is killed.
#[test]
fn kill_9_child() {
    let (Ok(db), Ok(url)) = (std::env::var(CHILD_DB), std::env::var(CHILD_URL)) else {
        return;
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let outbox = Arc::new(Outbox::open(&db, fast()).unwrap());
        tokio::spawn(Arc::clone(&outbox).run(CancellationToken::new()));
        for i in 0..5000 {
            let reference = format!("ps_kill_{i}");
            let mut d = delivery(&reference, DeliveryKind::Success, 0);
            d.connection.url = url.clone();
            outbox.enqueue(d).await.unwrap();
            println!("enqueued {reference}");
        }
        // The parent kills long before; if it died, do not linger.
        tokio::time::sleep(Duration::from_secs(30)).await;
    });
}

#[test]
fn kill_9_mid_enqueue_loses_nothing_that_was_committed() {
    use std::os::unix::process::ExitStatusExt;

    let dir = TempDir::new("kill9");
    let port = free_port();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["kill_9_child", "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_DB, dir.db())
        .env(CHILD_URL, url(port, DeliveryKind::Success))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Keep the pipe open until the child is dead: a closed pipe would fail its printing.
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut enqueued = Vec::new();
    for line in lines.by_ref() {
        if let Some(reference) = line.unwrap().strip_prefix("enqueued ") {
            enqueued.push(reference.to_owned());
            if enqueued.len() == 40 {
                break;
            }
        }
    }
    assert_eq!(enqueued.len(), 40, "the child stopped early");
    child.kill().unwrap(); // SIGKILL
    let status = child.wait().unwrap();
    assert_eq!(status.signal(), Some(9), "{status:?}");
    drop(lines);

    let integrity: String = rusqlite::Connection::open(dir.db())
        .unwrap()
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(integrity, "ok");

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let outbox = Arc::new(Outbox::open(dir.db(), fast()).unwrap());
        let stored = outbox.stats().await.unwrap().pending;
        assert!(stored >= 40, "{stored} pending after kill -9");
        for reference in &enqueued {
            assert!(
                outbox
                    .delivery(reference, DeliveryKind::Success)
                    .await
                    .unwrap()
                    .is_some(),
                "{reference} was committed before kill -9 and is lost"
            );
        }
        let (endpoint, _) = Endpoint::start(port, 0).await;
        let worker = start_worker(&outbox);
        until("everything delivered after kill -9", 20, || async {
            pending(&outbox).await == 0
        })
        .await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        let delivered = endpoint.delivered();
        assert_eq!(delivered.len() as u64, stored, "every stored row, once");
        assert!(delivered.values().all(|&n| n == 1), "{delivered:?}");
        for reference in &enqueued {
            assert!(delivered.contains_key(&("/hooks/success".to_owned(), reference.clone())));
        }
        stop_worker(worker).await;
    });
}

#[test]
fn one_database_is_one_processs_a_second_open_is_refused_until_the_first_closes() {
    let dir = TempDir::new("in-use");
    let first = Outbox::open(dir.db(), fast()).unwrap();
    let err = Outbox::open(dir.db(), fast()).unwrap_err();
    assert!(matches!(err, OutboxError::InUse { .. }), "{err}");
    let says = err.to_string();
    assert!(
        says.contains("one gateway per data directory") && says.contains("tonegate.db"),
        "{says}"
    );
    drop(first);
    Outbox::open(dir.db(), fast()).expect("free again once the first is closed");
}
