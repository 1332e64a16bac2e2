//! The PCI leak test in relay mode against a real HTTP processor: a whole payment over UDP and
//! HTTP, the caller's media relayed to an agent leg, the card charged through the `http`
//! connector on a stand-in processor on 127.0.0.1. Every log line at TRACE, the event stream,
//! the webhooks, the session API, the metrics, the database files (searched byte for byte) and
//! the relayed RTP (decoded by tonegate's own listener: telephone-events and tones) must hold no
//! card data; only the processor receives the card.

mod common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::routing::post;
use axum::{Json, Router};
use common::{contains_digits, contains_token, files_in, presses_heard};
use serde_json::{json, Value};
use tonegate::serve::{Gateway, ServeConfig};
use tonegate_testkit::agent::{wait_for, Agent};
use tonegate_testkit::caller::Caller;
use tonegate_testkit::logs::LogCapture;
use tonegate_testkit::standin::{customer_endpoints, demo_function, serve};

const CHARGE_TEMPLATE: &str = r#"{"number": {{ card.number }}, "exp_month": {{ card.exp_month }},
 "exp_year": {{ card.exp_year }}, "cvc": {{ card.security_code }},
 "postal_code": {{ card.postal_code }}, "amount": {{ amount }}}"#;

/// A processor on 127.0.0.1 that approves every charge and keeps what it was sent.
async fn processor() -> (SocketAddr, Arc<Mutex<Vec<Value>>>) {
    let bodies: Arc<Mutex<Vec<Value>>> = Arc::default();
    let kept = bodies.clone();
    let router = Router::new().route(
        "/charge",
        post(move |Json(body): Json<Value>| {
            let kept = kept.clone();
            async move {
                kept.lock().unwrap().push(body);
                Json(json!({"result": {"status": "approved", "id": "ch_relay_1"}}))
            }
        }),
    );
    (serve(router).await, bodies)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relayed_payment_through_an_http_processor_leaves_no_card_data_anywhere() {
    let logs = LogCapture::new();
    tracing::subscriber::set_global_default(logs.subscriber()).unwrap();

    let start = json!({"amount": 4200, "currency": "USD",
        "processor_parameters": {"is_postal_code_required": true}});
    let (customer, received) = customer_endpoints(start, 200).await.unwrap();
    let (processor_addr, charged) = processor().await;
    let dir = std::env::temp_dir().join(format!("tonegate-leak-relay-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let processor_config: tonegate_pci::ProcessorConfig = serde_json::from_value(json!({
        "type": "http",
        "url": format!("http://{processor_addr}/charge"),
        "timeout_ms": 5000,
        "charge_template": CHARGE_TEMPLATE,
        "response": {"success_path": "/result/status", "success_values": ["approved"],
                     "transaction_id_path": "/result/id"},
    }))
    .unwrap();
    let config = ServeConfig {
        shutdown_deadline_seconds: 0.5,
        processor: processor_config,
        ..ServeConfig::local(&dir, &demo_function(customer), "tel", "agt").unwrap()
    };
    let running = Gateway::start(config, None).await.unwrap();
    let agent = Agent::new(running.addr, "tel", "agt");

    // The agent's media leg: a socket that keeps every datagram relayed to it.
    let leg = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let (call, rtp) = agent
        .create_relay_call(leg.local_addr().unwrap(), json!({}))
        .await
        .unwrap();
    let relayed: Arc<Mutex<Vec<Vec<u8>>>> = Arc::default();
    let keep = relayed.clone();
    let reader = tokio::spawn(async move {
        let mut buf = [0u8; 2048];
        while let Ok(Ok((n, _))) =
            tokio::time::timeout(Duration::from_secs(3), leg.recv_from(&mut buf)).await
        {
            keep.lock().unwrap().push(buf[..n].to_vec());
        }
    });
    let mut caller = Caller::new(rtp, Duration::from_millis(2)).await.unwrap();
    caller.audio(5).await.unwrap();
    let session = agent.invoke(&call).await.unwrap();
    let mut events = agent.events(&session).await.unwrap();
    let mut seen = vec![
        wait_for(&mut events, "state_changed", false, Duration::from_secs(20))
            .await
            .unwrap(),
    ];
    agent.act(&session, "confirm_amount").await.unwrap();
    // The number as events and tones at once, the expiry and code as tones only, the postal
    // code as events only.
    caller.press_both("4242424242424242#").await.unwrap();
    caller.press_inband("0731739").await.unwrap();
    caller.press("94107#").await.unwrap();
    seen.push(
        wait_for(
            &mut events,
            "masked_summary",
            false,
            Duration::from_secs(20),
        )
        .await
        .unwrap(),
    );
    agent.act(&session, "confirm_card").await.unwrap();
    seen.push(
        wait_for(&mut events, "outcome", false, Duration::from_secs(20))
            .await
            .unwrap(),
    );
    caller.audio(10).await.unwrap();
    let state = agent.state(&session).await.unwrap();
    let metrics = reqwest::get(format!("http://{}/metrics", running.addr))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    agent.hang_up(&call).await.unwrap();
    reader.await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    running.stop().await;

    assert_eq!(seen.last().unwrap()["state"], "succeeded", "{seen:?}");
    let charges = charged.lock().unwrap().clone();
    assert_eq!(charges.len(), 1, "the processor was charged once");
    assert_eq!(charges[0]["number"], "4242424242424242", "and got the card");

    // The relayed media: audio went out, and tonegate's own listener hears no key in it.
    let relayed = relayed.lock().unwrap().clone();
    assert!(relayed.len() > 100, "{} datagrams relayed", relayed.len());
    assert_eq!(
        presses_heard(&relayed),
        0,
        "key presses reached the agent's leg"
    );
    assert!(
        relayed.iter().all(|p| p[1] & 0x7F != 101),
        "a telephone-event reached the agent's leg"
    );

    let database = files_in(&dir.join("data"));
    // Long secrets are searched byte for byte in the database files (a number stored next to
    // other digits or letters is still found); short ones as tokens, since three digits occur
    // in any binary file by chance.
    for secret in ["4242424242424242", "424242424242", "07/31", "94107"] {
        assert!(
            !database
                .windows(secret.len())
                .any(|w| w == secret.as_bytes()),
            "`{secret}` is in the database files"
        );
    }
    let logs = logs.text();
    assert!(
        logs.contains("session state changed"),
        "the log capture is real"
    );
    let everything = format!(
        "{logs}\n{seen:?}\n{state}\n{metrics}\n{:?}\n{}",
        received.lock().unwrap(),
        String::from_utf8_lossy(&database)
    );
    for secret in [
        "4242424242424242",
        "424242424242",
        "0731",
        "07/31",
        "2031",
        "739",
        "94107",
    ] {
        assert!(
            !contains_token(&everything, secret),
            "`{secret}` leaked into logs, events, webhooks, metrics or the database"
        );
    }
    // Card numbers also next to other bytes (a SQLite page stores them unseparated) and
    // through separators, in the raw database files as well as in the text.
    let pan = "4242424242424242";
    assert!(
        !contains_digits(everything.as_bytes(), pan) && !contains_digits(&database, pan),
        "`{pan}` leaked, glued to other bytes or through separators"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
