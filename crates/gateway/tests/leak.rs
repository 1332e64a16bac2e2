//! The PCI leak test at the gateway: a whole payment over real UDP and HTTP with every log line
//! of every crate captured at TRACE, the agent's event stream, the webhook bodies, the session
//! API, the metrics and the database files; no card number, security code, expiry or postal
//! code may appear anywhere.

mod common;

use std::time::Duration;

use common::{contains_digits, contains_token};
use serde_json::json;
use tonegate::serve::{Gateway, ServeConfig};
use tonegate_testkit::agent::{wait_for, Agent};
use tonegate_testkit::caller::Caller;
use tonegate_testkit::logs::LogCapture;
use tonegate_testkit::standin::{customer_endpoints, demo_function};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whole_payment_leaves_no_card_data_anywhere() {
    let logs = LogCapture::new();
    tracing::subscriber::set_global_default(logs.subscriber()).unwrap();

    let start = json!({"amount": 4200, "currency": "USD",
        "processor_parameters": {"is_postal_code_required": true}});
    let (customer, received) = customer_endpoints(start, 200).await.unwrap();
    let dir = std::env::temp_dir().join(format!("tonegate-leak-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let config = ServeConfig {
        shutdown_deadline_seconds: 0.5,
        ..ServeConfig::local(&dir, &demo_function(customer), "tel", "agt").unwrap()
    };
    let running = Gateway::start(config, None).await.unwrap();
    let agent = Agent::new(running.addr, "tel", "agt");
    let (call, rtp) = agent.create_call().await.unwrap();
    let mut caller = Caller::new(rtp, Duration::from_millis(2)).await.unwrap();
    let session = agent.invoke(&call).await.unwrap();
    let mut events = agent.events(&session).await.unwrap();
    let mut seen = Vec::new();
    seen.push(
        wait_for(&mut events, "state_changed", false, Duration::from_secs(20))
            .await
            .unwrap(),
    );
    agent.act(&session, "confirm_amount").await.unwrap();
    // A mistyped number first, then the card, in-band for the expiry and code.
    caller.press("4242424242424241#").await.unwrap();
    caller.press("4242424242424242#").await.unwrap();
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
    let state = agent.state(&session).await.unwrap();
    let metrics = reqwest::get(format!("http://{}/metrics", running.addr))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    running.stop().await;

    let mut database = Vec::new();
    for entry in std::fs::read_dir(dir.join("data")).unwrap() {
        database.extend(std::fs::read(entry.unwrap().path()).unwrap());
    }
    let logs = logs.text();
    assert!(
        logs.contains("session state changed"),
        "the log capture is real"
    );
    assert!(seen.last().unwrap()["state"] == "succeeded", "{seen:?}");
    let everything = format!(
        "{logs}\n{seen:?}\n{state}\n{metrics}\n{:?}\n{}",
        received.lock().unwrap(),
        String::from_utf8_lossy(&database)
    );
    for secret in [
        "4242424242424242",
        "4242424242424241",
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
    for pan in ["4242424242424242", "4242424242424241"] {
        assert!(
            !contains_digits(everything.as_bytes(), pan) && !contains_digits(&database, pan),
            "`{pan}` leaked, glued to other bytes or through separators"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Per-key leaks (a log line naming one key at a time) would not form a card number for the
/// test above to find. Keys are revealed only through `Key::as_char`, so the live path (the
/// call, the control session, the service) must never call it: only the binary's offline
/// tools under `gateway/src/cli/`, which print keys on purpose (replay, conformance, plots,
/// WAV reading), may.
#[test]
fn the_live_path_never_reveals_a_key() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let tools = root.join("gateway/src/cli");
    let mut offenders = Vec::new();
    let mut scanned = 0;
    for dir in ["gateway/src", "control/src", "call/src"] {
        let mut stack = vec![root.join(dir)];
        while let Some(path) = stack.pop() {
            for entry in std::fs::read_dir(&path).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    if path != tools {
                        stack.push(path);
                    }
                    continue;
                }
                scanned += 1;
                let text = std::fs::read_to_string(&path).unwrap();
                if text.contains("as_char()") {
                    offenders.push(path.display().to_string());
                }
            }
        }
    }
    assert!(scanned > 20, "the scan read the sources ({scanned} files)");
    assert!(
        offenders.is_empty(),
        "keys revealed on the live path in {offenders:?}"
    );
}
