//! `tonegate serve` end to end over real UDP and HTTP on 127.0.0.1: the customer's endpoints
//! are stand-ins (axum), the caller sends real RTP with RFC 4733 key presses, the agent side
//! drives the session over the HTTP API and reads its Server-Sent Events.

mod common;

use std::time::Duration;

use serde_json::{json, Value};
use tonegate::serve::{Gateway, Running, ServeConfig};
use tonegate_testkit::agent::{wait_for, Agent};
use tonegate_testkit::caller::Caller;
use tonegate_testkit::standin::{customer_endpoints, demo_function, Received};

const LIMIT: Duration = Duration::from_secs(20);
const PACE: Duration = Duration::from_millis(2);

fn start_body() -> Value {
    json!({
        "amount": 4200, "currency": "USD", "description": "Order #10482",
        "processor_parameters": {"invoice_id": "INV-10482", "is_postal_code_required": true}
    })
}

struct World {
    running: Running,
    received: Received,
    agent: Agent,
    _dir: TempDir,
}

struct TempDir(std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

async fn world(start_status: u16) -> World {
    let (customer, received) = customer_endpoints(start_body(), start_status)
        .await
        .unwrap();
    let dir = std::env::temp_dir().join(format!(
        "tonegate-e2e-{}-{}",
        std::process::id(),
        customer.port()
    ));
    let config = ServeConfig {
        shutdown_deadline_seconds: 0.5,
        ..ServeConfig::local(&dir, &demo_function(customer), "tel", "agt").unwrap()
    };
    let running = Gateway::start(config, None).await.unwrap();
    let agent = Agent::new(running.addr, "tel", "agt");
    World {
        running,
        received,
        agent,
        _dir: TempDir(dir),
    }
}

/// Waits until an endpoint received something at `path`.
async fn received_at(received: &Received, path: &str) -> Value {
    for _ in 0..200 {
        if let Some((_, body)) = received.lock().unwrap().iter().find(|(p, _)| p == path) {
            return body.clone();
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("nothing received at {path}: {:?}", received.lock().unwrap());
}

/// A call with a caller, a session on it, its event stream, and the amount confirmed: the
/// caller is being asked for the card number.
async fn collecting(
    w: &World,
) -> (
    String,
    Caller,
    String,
    tokio::sync::mpsc::UnboundedReceiver<Value>,
) {
    let (call, rtp) = w.agent.create_call().await.unwrap();
    let mut caller = Caller::new(rtp, PACE).await.unwrap();
    caller.audio(5).await.unwrap();
    let (session, events) = amount_confirmed(w, &call).await;
    (call, caller, session, events)
}

/// A session on `call` with its event stream and the amount confirmed.
async fn amount_confirmed(
    w: &World,
    call: &str,
) -> (String, tokio::sync::mpsc::UnboundedReceiver<Value>) {
    let session = w.agent.invoke(call).await.unwrap();
    let mut events = w.agent.events(&session).await.unwrap();
    wait_for(&mut events, "state_changed", false, LIMIT)
        .await
        .unwrap();
    assert_eq!(
        w.agent.act(&session, "confirm_amount").await.unwrap().0,
        200
    );
    (session, events)
}

/// The gateway's Prometheus text.
async fn metrics(w: &World) -> String {
    reqwest::get(format!("http://{}/metrics", w.running.addr))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// A relay-mode call forwarding to a fresh UDP socket, the other leg: the leg, the call and
/// its caller.
async fn relay_call(w: &World) -> (tokio::net::UdpSocket, String, Caller) {
    let agent_leg = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let (call, rtp) = w
        .agent
        .create_relay_call(agent_leg.local_addr().unwrap(), json!({}))
        .await
        .unwrap();
    let caller = Caller::new(rtp, PACE).await.unwrap();
    (agent_leg, call, caller)
}

async fn pay_with(card: &str) -> (World, Value) {
    let w = world(200).await;
    let (_call, mut caller, session, mut events) = collecting(&w).await;
    caller.press(&format!("{card}#1230123")).await.unwrap();
    caller.press("94107#").await.unwrap();
    let summary = wait_for(&mut events, "masked_summary", false, LIMIT)
        .await
        .unwrap();
    assert_eq!(summary["card"]["last4"], card[card.len() - 4..]);
    assert_eq!(w.agent.act(&session, "confirm_card").await.unwrap().0, 200);
    let outcome = wait_for(&mut events, "outcome", false, LIMIT)
        .await
        .unwrap();
    (w, outcome)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_payment_succeeds_and_the_success_endpoint_hears_of_it() {
    let (w, outcome) = pay_with("4242424242424242").await;
    assert_eq!(outcome["state"], "succeeded");
    let start = received_at(&w.received, "/start").await;
    assert_eq!(
        start,
        json!({"email": "caller@example.com", "order_id": "10482"})
    );
    let success = received_at(&w.received, "/success").await;
    assert_eq!(
        success["card"],
        json!({"brand": "visa", "last4": "4242", "payment_type": "credit-card"})
    );
    assert_eq!(
        success["processor_parameters"],
        json!({"invoice_id": "INV-10482"})
    );
    assert!(success["transaction_id"]
        .as_str()
        .unwrap()
        .starts_with("ch_sandbox_"));
    let all = format!("{:?}", w.received.lock().unwrap());
    assert!(
        !all.contains("4242424242424242") && !all.contains("1230"),
        "{all}"
    );
    let metrics = metrics(&w).await;
    for line in [
        "tonegate_calls_total 1",
        "tonegate_sessions_total 1",
        "tonegate_session_outcomes_total{state=\"succeeded\",reason=\"\"} 1",
        "tonegate_session_states_total{state=\"processing\"} 1",
        "tonegate_key_presses_total{source=\"rfc4733\"} 30",
        "tonegate_rtp_lost_total 0",
        "tonegate_outbox_depth ",
    ] {
        assert!(metrics.contains(line), "`{line}` not in:\n{metrics}");
    }
    w.running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_declined_card_fails_and_the_failure_endpoint_hears_why() {
    let (w, outcome) = pay_with("4000000000000002").await;
    assert_eq!(outcome["state"], "failed");
    assert_eq!(outcome["failed_reason"], "payment-declined");
    let failure = received_at(&w.received, "/failure").await;
    assert_eq!(failure["failed_reason"], "payment-declined");
    w.running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hanging_up_mid_card_fails_as_caller_hung_up() {
    let w = world(200).await;
    let (call, mut caller, _session, mut events) = collecting(&w).await;
    caller.press("424242").await.unwrap();
    wait_for(&mut events, "field_progress", false, LIMIT)
        .await
        .unwrap();
    w.agent.hang_up(&call).await.unwrap();
    let outcome = wait_for(&mut events, "outcome", false, LIMIT)
        .await
        .unwrap();
    assert_eq!(outcome["failed_reason"], "caller-hung-up");
    assert_eq!(
        received_at(&w.received, "/failure").await["failed_reason"],
        "caller-hung-up"
    );
    w.running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_mid_collection_charges_nothing() {
    let w = world(200).await;
    let (_call, mut caller, session, mut events) = collecting(&w).await;
    caller.press("4242424242424242#").await.unwrap();
    wait_for(&mut events, "field_completed", false, LIMIT)
        .await
        .unwrap();
    let (status, body) = w.agent.act(&session, "cancel").await.unwrap();
    assert_eq!(status, 200, "{body}");
    let outcome = wait_for(&mut events, "outcome", false, LIMIT)
        .await
        .unwrap();
    assert_eq!(outcome["state"], "cancelled");
    assert_eq!(
        received_at(&w.received, "/failure").await["failed_reason"],
        "caller-cancelled"
    );
    assert!(!w
        .received
        .lock()
        .unwrap()
        .iter()
        .any(|(p, _)| p == "/success"));
    let (status, body) = w.agent.act(&session, "confirm_card").await.unwrap();
    assert_eq!(status, 409);
    assert!(body["error"].as_str().unwrap().contains("ended"), "{body}");
    w.running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_connection_that_is_down_fails_the_session() {
    let w = world(503).await;
    let (call, _rtp) = w.agent.create_call().await.unwrap();
    let session = w.agent.invoke(&call).await.unwrap();
    let mut events = w.agent.events(&session).await.unwrap();
    let outcome = wait_for(&mut events, "outcome", false, LIMIT)
        .await
        .unwrap();
    assert_eq!(outcome["failed_reason"], "start-connection-failed");
    assert_eq!(
        received_at(&w.received, "/failure").await["failed_reason"],
        "start-connection-failed"
    );
    let state = w.agent.state(&session).await.unwrap();
    assert_eq!(state["state"], "failed");
    w.running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_without_the_right_token_get_401_and_nothing_else() {
    let w = world(200).await;
    let base = format!("http://{}", w.running.addr);
    let client = reqwest::Client::new();
    for (method, path, token) in [
        ("GET", "/v1/functions", None),
        ("GET", "/v1/functions", Some("tel")), // a telephony token on the agent side
        ("POST", "/v1/calls", Some("agt")),    // an agent token on the telephony side
        ("POST", "/v1/calls", Some("nope")),
    ] {
        let mut request = match method {
            "GET" => client.get(format!("{base}{path}")),
            _ => client.post(format!("{base}{path}")).json(&json!({})),
        };
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 401, "{method} {path} {token:?}");
        assert!(
            response.bytes().await.unwrap().is_empty(),
            "no information in a 401"
        );
    }
    let functions: Value = client
        .get(format!("{base}/v1/functions"))
        .bearer_auth("agt")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        functions["functions"][0]["openai"][0]["function"]["name"],
        "collect_payment"
    );
    assert_eq!(
        client
            .get(format!("{base}/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    w.running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_a_400_that_says_what_is_wrong() {
    let w = world(200).await;
    let base = format!("http://{}", w.running.addr);
    let client = reqwest::Client::new();
    let r = client
        .post(format!("{base}/v1/calls"))
        .bearer_auth("tel")
        .header("content-type", "application/json")
        .body("{\"sdp\": \"v=0")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    assert!(body["error"].as_str().unwrap().contains("EOF"), "{body}");
    let r = client
        .post(format!("{base}/v1/calls"))
        .bearer_auth("tel")
        .json(&json!({"sdp": 12}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("expected a string"),
        "{body}"
    );
    let r = client
        .post(format!("{base}/v1/calls"))
        .bearer_auth("tel")
        .json(&json!({"sdp": "v=0\r\nm=audio 4000 RTP/AVP 9\r\n"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("PCMU"));
    let r = client
        .post(format!("{base}/v1/calls"))
        .bearer_auth("tel")
        .json(&json!({"codec": "G729", "event_payload_type": 96}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("`G729`"));
    let r = client
        .post(format!("{base}/v1/calls"))
        .bearer_auth("tel")
        .json(&json!({"codec": "PCMA", "event_payload_type": 96, "mode": "relay"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400, "relay without relay_to");
    let r = client
        .post(format!("{base}/v1/calls"))
        .bearer_auth("tel")
        .json(&json!({"codec": "PCMA", "event_payload_type": 96}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "simple mode");
    let r = client
        .post(format!("{base}/v1/calls"))
        .bearer_auth("tel")
        .json(&json!({"sdp": "x".repeat(100_000)}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413, "bodies are size-limited");
    w.running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_on_the_rtp_port_does_not_disturb_the_call() {
    let w = world(200).await;
    let (_call, mut caller, _session, mut events) = collecting(&w).await;
    for _ in 0..50 {
        caller.garbage().await.unwrap();
    }
    caller.press("4242424242424242#").await.unwrap();
    let completed = wait_for(&mut events, "field_completed", false, LIMIT)
        .await
        .unwrap();
    assert_eq!(completed["brand"], "visa");
    w.running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_refuses_new_work_lets_sessions_end_then_hangs_up_the_rest() {
    let w = world(200).await;
    let base = format!("http://{}", w.running.addr);
    let (call, _rtp) = w.agent.create_call().await.unwrap();
    let session = w.agent.invoke(&call).await.unwrap();
    let mut events = w.agent.events(&session).await.unwrap();
    wait_for(&mut events, "state_changed", false, LIMIT)
        .await
        .unwrap();
    let client = reqwest::Client::new();
    assert_eq!(
        client
            .get(format!("{base}/readyz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let stopping = tokio::spawn(w.running.stop());
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        client
            .get(format!("{base}/readyz"))
            .send()
            .await
            .unwrap()
            .status(),
        503
    );
    let refused = client
        .post(format!("{base}/v1/calls"))
        .bearer_auth("tel")
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 503);
    // The session awaiting its amount confirmation is ended after the drain deadline: the
    // gateway ended it, not the caller.
    let outcome = wait_for(&mut events, "outcome", false, LIMIT)
        .await
        .unwrap();
    assert_eq!(outcome["failed_reason"], "internal-error");
    stopping.await.unwrap();
}

mod durable {
    //! Success and failure connections through the durable outbox: an endpoint that is down,
    //! then up; a gateway restarted with deliveries still pending.

    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use axum::extract::State;
    use axum::http::StatusCode;
    use axum::routing::post;
    use axum::{Json, Router};
    use serde_json::{json, Value};
    use tonegate::serve::{Gateway, Running, ServeConfig};
    use tonegate_testkit::agent::{wait_for, Agent};
    use tonegate_testkit::caller::Caller;
    use tonegate_testkit::standin::{demo_function, serve};

    use super::common::contains_token;
    use super::{start_body, LIMIT, PACE};

    #[derive(Clone, Default)]
    struct Endpoint {
        down: Arc<AtomicBool>,
        received: Arc<Mutex<Vec<(String, Value)>>>,
        refused: Arc<Mutex<u32>>,
    }

    async fn endpoint(e: Endpoint) -> std::net::SocketAddr {
        let hook = |path: &'static str| {
            move |State(e): State<Endpoint>, Json(body): Json<Value>| async move {
                if e.down.load(Ordering::SeqCst) {
                    *e.refused.lock().unwrap() += 1;
                    return (StatusCode::SERVICE_UNAVAILABLE, Json(json!({})));
                }
                e.received.lock().unwrap().push((path.to_owned(), body));
                (StatusCode::OK, Json(json!({"ok": true})))
            }
        };
        let app = Router::new()
            .route("/start", post(|| async { Json(start_body()) }))
            .route("/success", post(hook("/success")))
            .route("/failure", post(hook("/failure")))
            .with_state(e);
        serve(app).await
    }

    async fn gateway(dir: &std::path::Path, customer: std::net::SocketAddr) -> Running {
        let config = ServeConfig {
            shutdown_deadline_seconds: 0.5,
            webhook_backoff_base_ms: 50,
            webhook_backoff_cap_seconds: 1,
            ..ServeConfig::local(dir, &demo_function(customer), "tel", "agt").unwrap()
        };
        Gateway::start(config, None).await.unwrap()
    }

    /// A successful payment; returns the session reference.
    async fn pay(running: &Running) -> String {
        let agent = Agent::new(running.addr, "tel", "agt");
        let (call, rtp) = agent.create_call().await.unwrap();
        let mut caller = Caller::new(rtp, PACE).await.unwrap();
        let session = agent.invoke(&call).await.unwrap();
        let mut events = agent.events(&session).await.unwrap();
        wait_for(&mut events, "state_changed", false, LIMIT)
            .await
            .unwrap();
        agent.act(&session, "confirm_amount").await.unwrap();
        caller.press("4242424242424242#0731739").await.unwrap();
        caller.press("94107#").await.unwrap();
        wait_for(&mut events, "masked_summary", false, LIMIT)
            .await
            .unwrap();
        agent.act(&session, "confirm_card").await.unwrap();
        let outcome = wait_for(&mut events, "outcome", false, LIMIT)
            .await
            .unwrap();
        assert_eq!(outcome["state"], "succeeded");
        agent.hang_up(&call).await.unwrap();
        session
    }

    async fn delivered(e: &Endpoint, session: &str, want: usize) {
        for _ in 0..400 {
            let n = e
                .received
                .lock()
                .unwrap()
                .iter()
                .filter(|(p, b)| p == "/success" && b["session_reference_id"] == session)
                .count();
            if n >= want {
                return;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!(
            "{session} not delivered {want} time(s): {:?}",
            e.received.lock().unwrap()
        );
    }

    fn dir(name: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("tonegate-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_success_endpoint_that_is_down_gets_the_delivery_when_it_is_back() {
        let d = dir("down-up");
        let e = Endpoint::default();
        e.down.store(true, Ordering::SeqCst);
        let running = gateway(&d, endpoint(e.clone()).await).await;
        let session = pay(&running).await;
        for _ in 0..200 {
            if *e.refused.lock().unwrap() >= 2 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        assert!(*e.refused.lock().unwrap() >= 2, "retried while down");
        e.down.store(false, Ordering::SeqCst);
        delivered(&e, &session, 1).await;
        running.stop().await;
        let _ = std::fs::remove_dir_all(&d);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_restarted_gateway_delivers_what_was_pending_once_per_session() {
        let d = dir("restart");
        let e = Endpoint::default();
        e.down.store(true, Ordering::SeqCst);
        let customer = endpoint(e.clone()).await;
        let first = gateway(&d, customer).await;
        let session = pay(&first).await;
        first.stop().await;
        assert!(e.received.lock().unwrap().is_empty());

        // The database file after a whole session holds masked data only.
        let mut bytes = Vec::new();
        for entry in std::fs::read_dir(d.join("data")).unwrap() {
            bytes.extend(std::fs::read(entry.unwrap().path()).unwrap());
        }
        let text = String::from_utf8_lossy(&bytes);
        assert!(
            text.contains(&session),
            "the pending delivery is in the file"
        );
        for secret in [
            "4242424242424242",
            "424242424242",
            "0731",
            "07/31",
            "739",
            "94107",
        ] {
            assert!(
                !contains_token(&text, secret),
                "`{secret}` is in the database file"
            );
        }

        e.down.store(false, Ordering::SeqCst);
        let second = gateway(&d, customer).await;
        delivered(&e, &session, 1).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        let n = e
            .received
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, b)| b["session_reference_id"] == session)
            .count();
        assert_eq!(n, 1, "delivered once");
        second.stop().await;
        let _ = std::fs::remove_dir_all(&d);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_describes_every_route_the_gateway_serves() {
    let w = world(200).await;
    let base = format!("http://{}", w.running.addr);
    let doc: Value = reqwest::get(format!("{base}/openapi.json"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let paths = doc["paths"].as_object().unwrap();
    let mut documented = Vec::new();
    for (path, methods) in paths {
        for method in methods.as_object().unwrap().keys() {
            documented.push(format!("{} {path}", method.to_uppercase()));
        }
    }
    documented.sort();
    assert_eq!(
        documented,
        [
            "DELETE /v1/calls/{id}",
            "GET /v1/calls/by-sip-call-id/{sip_call_id}",
            "GET /v1/functions",
            "GET /v1/sessions/{id}",
            "GET /v1/sessions/{id}/events",
            "POST /v1/calls",
            "POST /v1/calls/{id}/sessions",
            "POST /v1/sessions/{id}/actions",
        ]
    );
    // Every documented route exists (without a token it is a 401, never a 404).
    let client = reqwest::Client::new();
    for route in &documented {
        let (method, path) = route.split_once(' ').unwrap();
        let url = format!(
            "{base}{}",
            path.replace("{id}", "x").replace("{sip_call_id}", "x")
        );
        let r = client
            .request(method.parse().unwrap(), url)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "{route}");
    }
    assert!(doc["components"]["schemas"]["CreateCall"].is_object());
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
    w.running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_band_tones_pay_too_and_a_tone_also_sent_as_an_event_is_one_press() {
    for both in [false, true] {
        let w = world(200).await;
        let (_call, mut caller, _session, mut events) = collecting(&w).await;
        let keys = "4242424242424242#123012394107#";
        if both {
            caller.press_both(keys).await.unwrap();
        } else {
            caller.press_inband(keys).await.unwrap();
        }
        let summary = wait_for(&mut events, "masked_summary", false, LIMIT)
            .await
            .unwrap();
        assert_eq!(summary["card"]["last4"], "4242", "both ways: {both}");
        let metrics = reqwest::get(format!("http://{}/metrics", w.running.addr))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let count = |source: &str| -> u64 {
            let prefix = format!("tonegate_key_presses_total{{source=\"{source}\"}} ");
            metrics
                .lines()
                .find_map(|l| l.strip_prefix(prefix.as_str()))
                .map_or(0, |n| n.parse().unwrap())
        };
        // Every key once, whichever source heard it first: never twice.
        assert_eq!(
            count("rfc4733") + count("inband"),
            30,
            "both ways: {both}\n{metrics}"
        );
        if !both {
            assert_eq!(count("inband"), 30);
        }
        w.running.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_mode_forwards_audio_and_holds_back_key_presses_during_a_session() {
    let w = world(200).await;
    let (agent_leg, call, mut caller) = relay_call(&w).await;
    let forwarded_pts = |leg: &tokio::net::UdpSocket| {
        let mut pts = Vec::new();
        let mut buf = [0u8; 2048];
        while let Ok((n, _)) = leg.try_recv_from(&mut buf) {
            if n >= 12 {
                pts.push(buf[1] & 0x7F);
            }
        }
        pts
    };
    caller.press("1").await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let before = forwarded_pts(&agent_leg);
    assert!(before.contains(&101) && before.contains(&0), "{before:?}");
    let _session = amount_confirmed(&w, &call).await;
    caller.press("4242").await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let during = forwarded_pts(&agent_leg);
    assert!(during.contains(&0), "audio still flows to the agent");
    assert!(
        !during.contains(&101),
        "no key press reaches the agent's leg: {during:?}"
    );
    w.running.stop().await;
}

/// Key presses a detector hears in the PCMU audio forwarded on a relay leg (packets read
/// from `leg` until it is quiet).
fn inband_presses_forwarded(leg: &tokio::net::UdpSocket) -> (usize, String) {
    let mut d = tonegate_media::inband::InbandDetector::default();
    let mut buf = [0u8; 2048];
    let (mut packets, mut keys) = (0, String::new());
    let table = tonegate_media::g711::Law::Mu.table();
    while let Ok((n, _)) = leg.try_recv_from(&mut buf) {
        if n < 12 || buf[1] & 0x7F != 0 {
            continue;
        }
        packets += 1;
        let ts = u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]);
        let samples: Vec<i16> = buf[12..n].iter().map(|&b| table[usize::from(b)]).collect();
        let at =
            tonegate_media::MediaTime::new(u64::from(ts), tonegate_media::ClockRate::NARROWBAND);
        d.handle_samples(at, &samples).unwrap();
    }
    d.finish();
    while let Some(e) = d.poll_event() {
        if let tonegate_media::inband::InbandEvent::Press(p) = e {
            keys.push(p.press.key().as_char());
        }
    }
    (packets, keys)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_mode_scrubs_key_tones_from_forwarded_audio_during_a_session() {
    let w = world(200).await;
    let (agent_leg, call, mut caller) = relay_call(&w).await;
    // No session: the audio is forwarded as it came, tones and all.
    caller.press_inband("1").await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (packets, keys) = inband_presses_forwarded(&agent_leg);
    assert!(packets >= 10, "{packets} audio packets forwarded");
    assert_eq!(keys, "1", "outside a session the tones reach the other leg");
    let (_session, mut events) = amount_confirmed(&w, &call).await;
    caller.press_inband("4242").await.unwrap();
    wait_for(&mut events, "field_progress", false, LIMIT)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (packets, keys) = inband_presses_forwarded(&agent_leg);
    assert!(packets >= 40, "audio still flows: {packets} packets");
    assert_eq!(
        keys, "",
        "no key tone reaches the other leg during a session"
    );
    let metrics = metrics(&w).await;
    let scrubbed: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("tonegate_rtp_scrubbed_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no scrubbed counter: {metrics}"));
    assert!(scrubbed >= 20, "{scrubbed} packets scrubbed");
    w.running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_are_forgotten_a_while_after_their_call_ends() {
    let (customer, _received) = customer_endpoints(start_body(), 200).await.unwrap();
    let dir = std::env::temp_dir().join(format!("tonegate-retention-{}", std::process::id()));
    let config = ServeConfig {
        shutdown_deadline_seconds: 0.5,
        session_retention_seconds: 1,
        ..ServeConfig::local(&dir, &demo_function(customer), "tel", "agt").unwrap()
    };
    let running = Gateway::start(config, None).await.unwrap();
    let agent = Agent::new(running.addr, "tel", "agt");
    let (call, _rtp) = agent.create_call().await.unwrap();
    let session = agent.invoke(&call).await.unwrap();
    agent.hang_up(&call).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(agent.state(&session).await.unwrap()["state"], "failed");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let gone = agent.state(&session).await.unwrap();
    assert!(
        gone["error"].as_str().unwrap().contains("no session"),
        "{gone}"
    );
    running.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn rtp_port_ranges_parse_or_say_what_is_wrong() {
    use tonegate::serve::PortRange;
    let r: PortRange = "20000-20005".parse().unwrap();
    assert_eq!(r.even_ports().collect::<Vec<_>>(), [20000, 20002, 20004]);
    assert_eq!(r.to_string(), "20000-20005");
    for (range, even) in [("20001-20002", vec![20002]), ("65533-65535", vec![65534])] {
        let r: PortRange = range.parse().unwrap();
        assert_eq!(r.even_ports().collect::<Vec<_>>(), even, "{range}");
    }
    for (bad, says) in [
        ("20000", "expected FIRST-LAST"),
        ("a-b", "ports are 1-65535"),
        ("0-10", "ports are 1-65535"),
        ("20000-70000", "ports are 1-65535"),
        ("30000-20000", "the first port is above the last"),
        ("20001-20001", "no even port"),
    ] {
        let err = bad.parse::<PortRange>().unwrap_err();
        assert!(err.contains(says), "{bad}: {err}");
    }
    // In a config file the same reason comes with the key's place.
    let dir = std::env::temp_dir().join(format!("tonegate-ports-cfg-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("serve.yaml");
    std::fs::write(&file, "rtp_ip: 127.0.0.1\nrtp_ports: 30000-20000\n").unwrap();
    let err = ServeConfig::load(Some(&file)).unwrap_err().to_string();
    assert!(
        err.contains("serve.yaml") && err.contains("rtp_ports") && err.contains("above the last"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_take_even_rtp_ports_from_the_configured_range_and_say_when_it_is_full() {
    // Two free even ports next to each other, found by binding and letting go.
    let first = (0..200)
        .map(|i| 43000 + 4 * ((std::process::id() as u16 % 500) + i))
        .find(|&p| {
            [p, p + 2]
                .iter()
                .all(|&q| std::net::UdpSocket::bind(("127.0.0.1", q)).is_ok())
        })
        .expect("two free ports");
    let (customer, _received) = customer_endpoints(start_body(), 200).await.unwrap();
    let dir = std::env::temp_dir().join(format!("tonegate-ports-{}", std::process::id()));
    let config = ServeConfig {
        rtp_ports: Some(format!("{first}-{}", first + 3).parse().unwrap()),
        ..ServeConfig::local(&dir, &demo_function(customer), "tel", "agt").unwrap()
    };
    let running = Gateway::start(config, None).await.unwrap();
    let agent = Agent::new(running.addr, "tel", "agt");
    let (a, rtp_a) = agent.create_call().await.unwrap();
    let (_b, rtp_b) = agent.create_call().await.unwrap();
    let mut ports = [rtp_a.port(), rtp_b.port()];
    ports.sort_unstable();
    assert_eq!(ports, [first, first + 2], "the range's even ports");
    let full = reqwest::Client::new()
        .post(format!("http://{}/v1/calls", running.addr))
        .bearer_auth("tel")
        .json(&json!({"codec": "PCMU"}))
        .send()
        .await
        .unwrap();
    assert_eq!(full.status(), 503);
    let body = full.text().await.unwrap();
    assert!(
        body.contains("no free RTP port") && body.contains(&format!("{first}-{}", first + 3)),
        "{body}"
    );
    // A call that ends gives its port back.
    agent.hang_up(&a).await.unwrap();
    let mut again = None;
    for _ in 0..100 {
        if let Ok(call) = agent.create_call().await {
            again = Some(call);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (_c, rtp_c) = again.expect("a port is free again after a hang-up");
    assert_eq!(rtp_c.port(), rtp_a.port());
    running.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_gateway_on_the_same_data_dir_is_refused_at_start() {
    let (customer, _received) = customer_endpoints(start_body(), 200).await.unwrap();
    let dir = std::env::temp_dir().join(format!("tonegate-two-{}", std::process::id()));
    let config = || ServeConfig {
        shutdown_deadline_seconds: 0.2,
        ..ServeConfig::local(&dir, &demo_function(customer), "tel", "agt").unwrap()
    };
    let first = Gateway::start(config(), None).await.unwrap();
    let err = match Gateway::start(config(), None).await {
        Ok(_) => panic!("two gateways on one database would each deliver every webhook"),
        Err(e) => format!("{e:#}"),
    };
    assert!(err.contains("one gateway per data directory"), "{err}");
    first.stop().await;
    let again = Gateway::start(config(), None)
        .await
        .expect("free once the first has stopped");
    again.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}
