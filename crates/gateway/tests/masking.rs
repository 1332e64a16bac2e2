//! Relay masking asked for by the telephony side: `mask_whole_call` on `POST /v1/calls` masks
//! key presses on the relayed leg with no payment session at all (the call crate's tests cover
//! the masking spans themselves).

use std::time::Duration;

use serde_json::json;
use tonegate::serve::{Gateway, ServeConfig};
use tonegate_testkit::agent::Agent;
use tonegate_testkit::caller::Caller;
use tonegate_testkit::standin::{customer_endpoints, demo_function};

/// Payload types of the packets the other leg received (until it is quiet).
async fn received_pts(leg: &tokio::net::UdpSocket) -> Vec<u8> {
    let mut pts = Vec::new();
    let mut buf = [0u8; 2048];
    while let Ok(Ok((n, _))) =
        tokio::time::timeout(Duration::from_millis(300), leg.recv_from(&mut buf)).await
    {
        if n >= 12 {
            pts.push(buf[1] & 0x7F);
        }
    }
    pts
}

async fn relay_keys(mask_whole_call: Option<bool>) -> Vec<u8> {
    let (customer, _) = customer_endpoints(json!({"amount": 100, "currency": "USD"}), 200)
        .await
        .unwrap();
    let dir = std::env::temp_dir().join(format!(
        "tonegate-mask-{}-{}",
        std::process::id(),
        customer.port()
    ));
    let config = ServeConfig::local(&dir, &demo_function(customer), "tel", "agt").unwrap();
    let running = Gateway::start(config, None).await.unwrap();
    let leg = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let extra = match mask_whole_call {
        Some(mask) => json!({ "mask_whole_call": mask }),
        None => json!({}),
    };
    let (_, rtp) = Agent::new(running.addr, "tel", "agt")
        .create_relay_call(leg.local_addr().unwrap(), extra)
        .await
        .unwrap();
    let mut caller = Caller::new(rtp, Duration::from_millis(2)).await.unwrap();
    caller.press_both("42").await.unwrap();
    let pts = received_pts(&leg).await;
    running.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
    pts
}

#[tokio::test]
async fn a_call_masked_whole_forwards_audio_and_no_key_press() {
    let plain = relay_keys(None).await;
    assert!(plain.contains(&101), "unmasked: events go out: {plain:?}");
    let masked = relay_keys(Some(true)).await;
    assert!(masked.contains(&0), "audio goes out: {masked:?}");
    assert!(!masked.contains(&101), "no event goes out: {masked:?}");
}
