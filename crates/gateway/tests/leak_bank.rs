//! The PCI leak test for bank debits (`ach-debit`): a whole payment by bank account over UDP
//! and HTTP, in relay mode, through the `http` connector on a stand-in processor on
//! 127.0.0.1. The caller keys a mistyped routing number, then the routing and account numbers;
//! every log line of every crate at every level down to TRACE, every event of the agent's
//! stream, the webhooks, the session API, the metrics, the database files (byte for byte), the
//! outbox's rows and the RTP relayed to the agent's leg must hold neither number, and only the
//! processor receives them. The numbers are searched with [`common::contains_digits`], which
//! finds them next to other bytes and with separators, not only as tokens.

mod common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::routing::post;
use axum::{Json, Router};
use common::{contains_digits, files_in, outbox_rows, presses_heard, wait_keeping};
use serde_json::{json, Value};
use tonegate::serve::{Gateway, ServeConfig};
use tonegate_testkit::agent::Agent;
use tonegate_testkit::caller::Caller;
use tonegate_testkit::logs::LogCapture;
use tonegate_testkit::standin::{customer_endpoints, demo_function, serve};

/// A routing number with a valid ABA check digit (3-7-1 weights), and digits that occur in no
/// id or port by chance.
const ROUTING: &str = "267084131";
/// The same with a wrong check digit: rejected by the collector, and must not leak either.
const MISTYPED_ROUTING: &str = "267084132";
/// A 14-digit account number (the masked card shows its last four, `0317`).
const ACCOUNT: &str = "73920581640317";
/// The account number without its last four: no masked form ever shows it.
const ACCOUNT_HEAD: &str = "7392058164";

/// Card payments are not expected here; the template still renders for the sample card the
/// connector checks it with at start.
const CHARGE_TEMPLATE: &str = r#"{% if bank %}{"routing_number": {{ bank.routing_number }},
 "account_number": {{ bank.account_number }}, "amount": {{ amount }}}{% else %}
{"number": {{ card.number }}, "amount": {{ amount }}}{% endif %}"#;

/// A processor on 127.0.0.1 that approves every debit and keeps what it was sent.
async fn processor() -> (SocketAddr, Arc<Mutex<Vec<Value>>>) {
    let bodies: Arc<Mutex<Vec<Value>>> = Arc::default();
    let kept = bodies.clone();
    let router = Router::new().route(
        "/debit",
        post(move |Json(body): Json<Value>| {
            let kept = kept.clone();
            async move {
                kept.lock().unwrap().push(body);
                Json(json!({"result": {"status": "approved", "id": "ach_relay_1"}}))
            }
        }),
    );
    (serve(router).await, bodies)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bank_debit_leaves_no_routing_or_account_number_anywhere() {
    let logs = LogCapture::new();
    tracing::subscriber::set_global_default(logs.subscriber()).unwrap();

    // `allowed_payment_types: [ach-debit]` in the start response is what makes the voice
    // payment function collect a bank account instead of a card (control's `start.rs`, pci's
    // collector: routing number, then account number).
    let start = json!({"amount": 4200, "currency": "USD",
        "processor_parameters": {"allowed_payment_types": ["ach-debit"]}});
    let (customer, received) = customer_endpoints(start, 200).await.unwrap();
    let (processor_addr, debited) = processor().await;
    let dir = std::env::temp_dir().join(format!("tonegate-leak-bank-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let processor_config: tonegate_pci::ProcessorConfig = serde_json::from_value(json!({
        "type": "http",
        "url": format!("http://{processor_addr}/debit"),
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
    let mut seen = Vec::new();
    wait_keeping(&mut events, "state_changed", &mut seen).await;
    agent.act(&session, "confirm_amount").await.unwrap();
    // The mistyped routing number as events (nine digits end the field), the routing number
    // as events and tones at once, the account number as tones only, ended by `#`.
    caller.press(MISTYPED_ROUTING).await.unwrap();
    wait_keeping(&mut events, "field_rejected", &mut seen).await;
    caller.press_both(ROUTING).await.unwrap();
    caller.press_inband(&format!("{ACCOUNT}#")).await.unwrap();
    let summary = wait_keeping(&mut events, "masked_summary", &mut seen).await;
    agent.act(&session, "confirm_card").await.unwrap();
    let outcome = wait_keeping(&mut events, "outcome", &mut seen).await;
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

    // The payment was a real bank debit, and the processor got the numbers.
    assert_eq!(outcome["state"], "succeeded", "{seen:?}");
    let summary = summary.to_string();
    assert!(
        summary.contains("ach-debit") && summary.contains("0317"),
        "a masked bank account: {summary}"
    );
    let debits = debited.lock().unwrap().clone();
    assert_eq!(debits.len(), 1, "the processor was asked once: {debits:?}");
    assert_eq!(debits[0]["routing_number"], ROUTING);
    assert_eq!(debits[0]["account_number"], ACCOUNT);

    // The agent's leg: audio went out, with neither a telephone-event nor a tone in it.
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

    // The outbox: the success delivery is there (delivered), its row as stored.
    let outbox = outbox_rows(&dir.join("data/tonegate.db"));
    assert!(
        outbox.contains(&session) && outbox.contains("delivered"),
        "the outbox holds the session's delivery: {outbox}"
    );

    let logs = logs.text();
    for level in ["TRACE", "DEBUG", " INFO", "session state changed"] {
        assert!(
            logs.contains(level),
            "the log capture is real: no `{level}`"
        );
    }
    let mut everything = format!(
        "{logs}\n{seen:?}\n{state}\n{metrics}\n{:?}\n{outbox}\n",
        received.lock().unwrap()
    )
    .into_bytes();
    everything.extend(files_in(&dir.join("data")));
    everything.extend(relayed.concat());
    for secret in [ROUTING, MISTYPED_ROUTING, ACCOUNT, ACCOUNT_HEAD] {
        assert!(
            !contains_digits(&everything, secret),
            "`{secret}` leaked into logs, events, webhooks, the session API, metrics, the \
             database, the outbox or the relayed audio"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// The search the test relies on finds a number however it is stored next to other bytes.
#[test]
fn digits_are_found_next_to_other_bytes_and_through_separators() {
    for stored in [
        &b"x7392058164031700y"[..],
        b"\x01\x1773920581640317\x00",
        b"acct73920581640317",
        b"7392-0581-6403-17",
        b"['7', '3', '9', '2', '0', '5', '8', '1', '6', '4', '0', '3', '1', '7']",
        b"7\x003\x009\x002\x000\x005\x008\x001\x006\x004\x000\x003\x001\x007\x00",
    ] {
        assert!(
            contains_digits(stored, ACCOUNT),
            "{}",
            String::from_utf8_lossy(stored)
        );
    }
    for other in [
        &b"7392058164031"[..],
        b"7392058164a0317",
        b"7392058164     0317",
        b"bank account ending 0317",
    ] {
        assert!(
            !contains_digits(other, ACCOUNT),
            "{}",
            String::from_utf8_lossy(other)
        );
    }
}
