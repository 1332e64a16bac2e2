//! A processor (the `http` connector's gateway, on 127.0.0.1) that echoes the card being paid in
//! its answer: in a decline message, in every form of the expiry, with any separator between
//! the number's digits, and in the ids of an approval. `pay` must hand none of it on.

mod support;

use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Router;
use serde_json::{json, Value};
use support::{card, charge, tokenize};
use tonegate_pci::{pay, PaymentOutcome, Processor, ProcessorConfig, TokenType};
use tonegate_testkit::standin::serve;

const NUMBER: &str = "4242424242424242";

/// The card every test pays: 4242 4242 4242 4242, expiry 07/31, code 837, postal code 94107.
fn the_card() -> tonegate_pci::SealedCard {
    card(NUMBER, "0731", "837", "94107")
}

type Answer = Arc<Mutex<(u16, Value)>>;

async fn answer(State(answer): State<Answer>) -> Response {
    let (status, body) = answer.lock().unwrap().clone();
    (
        StatusCode::from_u16(status).unwrap(),
        [("content-type", "application/json")],
        body.to_string(),
    )
        .into_response()
}

async fn echoing_gateway() -> (Answer, Box<dyn Processor>) {
    let state = Answer::new(Mutex::new((200, json!({}))));
    let router = Router::new().fallback(answer).with_state(state.clone());
    let addr = serve(router).await;
    let config: ProcessorConfig = serde_json::from_value(json!({
        "type": "http",
        "url": format!("http://{addr}/charge"),
        "timeout_ms": 5000,
        "charge_template": r#"{"pan": {{ card.number }}}"#,
        "tokenize_template": r#"{"pan": {{ card.number }}}"#,
        "response": {
            "success_path": "/status",
            "success_values": ["approved"],
            "transaction_id_path": "/id",
            "token_id_path": "/token",
            "decline_code_path": "/code",
            "message_path": "/message",
        },
    }))
    .unwrap();
    (state, config.build().unwrap())
}

#[tokio::test]
async fn the_cards_own_data_is_scrubbed_from_processor_text_in_every_form() {
    let (state, http) = echoing_gateway().await;
    let echoes = [
        // The expiry, 07/2031, in its common forms.
        "07/31",
        "0731",
        "07/2031",
        "2031-07",
        "7/31",
        "07-31",
        "7/2031",
        "2031/07",
        // The security and postal codes.
        "837",
        "94107",
        // The number, with separators the old rule let through.
        "4242.4242.4242.4242",
        "4242_4242_4242_4242",
        "4242  4242  4242  4242",
        "4242\t4242\n4242\r\n4242",
        "4242/4242/4242/4242",
        "4242 - 4242 - 4242 - 4242",
        NUMBER,
    ];
    for (i, echo) in echoes.iter().enumerate() {
        *state.lock().unwrap() = (
            402,
            json!({"code": format!("declined_{echo}"), "message": format!("card {echo} refused")}),
        );
        let outcome = pay(
            &*http,
            the_card(),
            &charge(&format!("E{i}"), 500),
            SystemTime::now(),
        )
        .await;
        let PaymentOutcome::Failed {
            message,
            decline_code,
            ..
        } = &outcome
        else {
            panic!("{echo:?}: {outcome:?}");
        };
        assert_eq!(message, "card [redacted] refused", "{echo:?}");
        assert_eq!(
            decline_code.as_deref(),
            Some("declined_[redacted]"),
            "{echo:?}"
        );
    }
}

#[tokio::test]
async fn ids_that_echo_the_number_are_scrubbed_and_real_ids_kept() {
    let (state, http) = echoing_gateway().await;
    let cases = [
        // (transaction id, token id) as answered -> as handed on.
        (
            ("txn_4242424242424242", "vault4242424242424242x"),
            ("txn_[redacted]", "vault[redacted]x"),
        ),
        (
            ("4242 4242 4242 4242", "tok.4242-4242-4242-4242"),
            ("[redacted]", "tok.[redacted]"),
        ),
        (
            ("ch_3Nx9Qz2eZvKYlo2C1uPBd8Kx", "pm_1OaB2c3D4e5F6g7H8i9J0k"),
            ("ch_3Nx9Qz2eZvKYlo2C1uPBd8Kx", "pm_1OaB2c3D4e5F6g7H8i9J0k"),
        ),
        (
            ("ch_sandbox_5285d7985648c2a4", "id-837-94107"),
            ("ch_sandbox_5285d7985648c2a4", "id-[redacted]-[redacted]"),
        ),
    ];
    for (i, ((transaction, token), (want_transaction, want_token))) in cases.iter().enumerate() {
        *state.lock().unwrap() = (
            200,
            json!({"status": "approved", "id": transaction, "token": token}),
        );
        for request in [
            charge(&format!("I{i}"), 500),
            tokenize(&format!("T{i}"), TokenType::Reusable),
        ] {
            let outcome = pay(&*http, the_card(), &request, SystemTime::now()).await;
            let PaymentOutcome::Succeeded {
                transaction_id,
                token_id,
                ..
            } = &outcome
            else {
                panic!("{transaction:?}: {outcome:?}");
            };
            assert_eq!(
                transaction_id.as_deref(),
                Some(*want_transaction),
                "{transaction:?}"
            );
            assert_eq!(token_id.as_deref(), Some(*want_token), "{token:?}");
        }
    }
}
