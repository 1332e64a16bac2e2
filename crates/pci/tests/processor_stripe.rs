//! The `stripe` connector against a Stripe-shaped server on 127.0.0.1: the three endpoints
//! it calls, with Stripe's form fields, bearer key, idempotency and JSON answers, behaving by
//! Stripe's test card numbers.

mod support;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use serde_json::{json, Value};
use support::{assert_no_card_data, bank, capture_traces, card, charge, tokenize};
use tonegate_pci::{
    pay, FailedReason, PaymentOutcome, Processor, ProcessorConfig, ProcessorConfigError, TokenType,
};
use tonegate_testkit::standin::serve;

const KEY: &str = "sk_test_tonegate";
/// Every test ends well within this, whatever the server does.
const BOUND: Duration = Duration::from_secs(20);

/// A fault the next request to an endpoint meets.
#[derive(Clone, Copy)]
enum Fault {
    /// HTTP 500 before anything is processed (not stored under the idempotency key).
    ServerError,
    /// HTTP 200 with a body that is not JSON, before anything is processed.
    Malformed,
    /// Processed and stored as usual, but the answer is sent only after this long.
    Slow(Duration),
}

#[derive(Clone, Debug)]
struct Received {
    path: String,
    idempotency_key: Option<String>,
    form: Vec<(String, String)>,
    replayed: bool,
}

#[derive(Default)]
struct StripeMock {
    requests: Vec<Received>,
    /// Idempotency key -> (the request it answered, status, body).
    stored: HashMap<String, (String, u16, String)>,
    /// Payment method id -> card number.
    payment_methods: HashMap<String, String>,
    payment_intents: usize,
    setup_intents: usize,
    next_id: usize,
    faults: HashMap<String, Fault>,
}

type Mock = Arc<Mutex<StripeMock>>;

fn error(status: u16, error: Value) -> (u16, String) {
    (status, json!({ "error": error }).to_string())
}

impl StripeMock {
    fn id(&mut self, prefix: &str) -> String {
        self.next_id += 1;
        format!("{prefix}_mock{}", self.next_id)
    }

    /// What Stripe would answer to `path` with `form`.
    fn process(&mut self, path: &str, form: &HashMap<String, String>) -> (u16, String) {
        let field = |name: &str| form.get(name).cloned().unwrap_or_default();
        match path {
            "/v1/payment_methods" => {
                if field("type") != "card" || field("card[number]").is_empty() {
                    return error(
                        400,
                        json!({"type": "invalid_request_error", "code": "parameter_missing",
                               "message": "Missing required param: card[number]."}),
                    );
                }
                let id = self.id("pm");
                let number = field("card[number]");
                let last4 = number[number.len() - 4..].to_owned();
                self.payment_methods.insert(id.clone(), number);
                (
                    200,
                    json!({"id": id, "object": "payment_method", "type": "card",
                           "card": {"brand": "visa", "last4": last4,
                                    "exp_month": field("card[exp_month]").parse::<u32>().unwrap_or(0),
                                    "exp_year": field("card[exp_year]").parse::<u32>().unwrap_or(0)},
                           "billing_details": {"address":
                                {"postal_code": form.get("billing_details[address][postal_code]")}}})
                    .to_string(),
                )
            }
            "/v1/payment_intents" | "/v1/setup_intents" => {
                let setup = path == "/v1/setup_intents";
                let Some(number) = self.payment_methods.get(&field("payment_method")).cloned()
                else {
                    return error(
                        400,
                        json!({"type": "invalid_request_error", "code": "resource_missing",
                               "message": "No such PaymentMethod"}),
                    );
                };
                if field("confirm") != "true" {
                    return error(400, json!({"type": "invalid_request_error"}));
                }
                let id = if setup {
                    self.setup_intents += 1;
                    self.id("seti")
                } else {
                    if field("amount").parse::<u64>().is_err() || field("currency").is_empty() {
                        return error(400, json!({"type": "invalid_request_error"}));
                    }
                    self.payment_intents += 1;
                    self.id("pi")
                };
                let object = if setup {
                    "setup_intent"
                } else {
                    "payment_intent"
                };
                let declined = |decline_code: &str, message: &str| {
                    error(
                        402,
                        json!({"type": "card_error", "code": "card_declined",
                               "decline_code": decline_code, "message": message,
                               object: {"id": id, "status": "requires_payment_method"}}),
                    )
                };
                match number.as_str() {
                    "4000000000009995" if !setup => {
                        declined("insufficient_funds", "Your card has insufficient funds.")
                    }
                    "4000000000000002" => declined("generic_decline", "Your card was declined."),
                    "4000002500003155" => (
                        200,
                        json!({"id": id, "object": object, "status": "requires_action",
                               "next_action": {"type": "use_stripe_sdk"}})
                        .to_string(),
                    ),
                    _ => {
                        let charge = self.id("ch");
                        let body = if setup {
                            json!({"id": id, "object": object, "status": "succeeded",
                                   "payment_method": field("payment_method"),
                                   "usage": field("usage")})
                        } else {
                            json!({"id": id, "object": object, "status": "succeeded",
                                   "amount": field("amount").parse::<u64>().unwrap(),
                                   "currency": field("currency"), "latest_charge": charge,
                                   "payment_method": field("payment_method")})
                        };
                        (200, body.to_string())
                    }
                }
            }
            _ => error(404, json!({"type": "invalid_request_error"})),
        }
    }
}

async fn handle(State(mock): State<Mock>, uri: Uri, headers: HeaderMap, body: String) -> Response {
    let reply = |status: u16, body: String, replayed: bool| {
        let mut response = (
            StatusCode::from_u16(status).unwrap(),
            [("content-type", "application/json")],
            body,
        )
            .into_response();
        if replayed {
            response
                .headers_mut()
                .insert("idempotent-replayed", "true".parse().unwrap());
        }
        response
    };
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(&format!("Bearer {KEY}"))
    {
        let (status, body) = error(
            401,
            json!({"type": "invalid_request_error", "message": "Invalid API Key provided."}),
        );
        return reply(status, body, false);
    }
    assert_eq!(
        headers.get("content-type").unwrap(),
        "application/x-www-form-urlencoded"
    );
    let path = uri.path().to_owned();
    let pairs: Vec<(String, String)> = form_urlencoded::parse(body.as_bytes())
        .into_owned()
        .collect();
    let form: HashMap<String, String> = pairs.iter().cloned().collect();
    let key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let fingerprint = format!("{path}?{body}");

    let (outcome, delay) = {
        let mut mock = mock.lock().unwrap();
        let stored = key.as_ref().and_then(|k| mock.stored.get(k).cloned());
        mock.requests.push(Received {
            path: path.clone(),
            idempotency_key: key.clone(),
            form: pairs,
            replayed: stored.is_some(),
        });
        if let Some((first, status, body)) = stored {
            if first != fingerprint {
                let (status, body) = error(
                    400,
                    json!({"type": "idempotency_error",
                           "message": "Keys for idempotent requests can only be used with the \
                                       same parameters they were first used with."}),
                );
                return reply(status, body, false);
            }
            return reply(status, body, true);
        }
        match mock.faults.remove(&path) {
            Some(Fault::ServerError) => {
                let (status, body) = error(
                    500,
                    json!({"type": "api_error", "message": "Something went wrong on Stripe's end."}),
                );
                return reply(status, body, false);
            }
            Some(Fault::Malformed) => return reply(200, "{\"id\": \"pm_".to_owned(), false),
            Some(Fault::Slow(delay)) => (mock.process(&path, &form), Some(delay)),
            None => (mock.process(&path, &form), None),
        }
    };
    if let Some(key) = key {
        mock.lock()
            .unwrap()
            .stored
            .insert(key, (fingerprint, outcome.0, outcome.1.clone()));
    }
    if let Some(delay) = delay {
        tokio::time::sleep(delay).await;
    }
    reply(outcome.0, outcome.1, false)
}

async fn stripe_server() -> (Mock, String) {
    let mock = Mock::default();
    let router = Router::new()
        .route("/v1/payment_methods", post(handle))
        .route("/v1/payment_intents", post(handle))
        .route("/v1/setup_intents", post(handle))
        .with_state(mock.clone());
    let addr = serve(router).await;
    (mock, format!("http://{addr}"))
}

fn connector(base_url: &str, timeout_ms: u64) -> Box<dyn Processor> {
    let config: ProcessorConfig = serde_json::from_value(json!({
        "type": "stripe", "secret_key": KEY, "base_url": base_url, "timeout_ms": timeout_ms,
    }))
    .unwrap();
    config.build().unwrap()
}

fn pairs(form: &[(String, String)]) -> Vec<(&str, &str)> {
    form.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

#[tokio::test]
async fn a_charge_creates_a_payment_method_then_a_confirmed_payment_intent() {
    let (mock, base) = stripe_server().await;
    let stripe = connector(&base, 5_000);
    let outcome = pay(
        &*stripe,
        card("4242424242424242", "0731", "837", "94107"),
        &charge("S1", 1999),
        SystemTime::now(),
    )
    .await;
    let PaymentOutcome::Succeeded {
        card,
        transaction_id,
        token_id,
    } = outcome
    else {
        panic!("{outcome:?}")
    };
    assert_eq!(card.to_string(), "visa ending 4242");
    assert_eq!(transaction_id.as_deref(), Some("pi_mock2"));
    assert_eq!(token_id, None);

    let mock = mock.lock().unwrap();
    let requests = &mock.requests;
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[0].path, "/v1/payment_methods");
    assert_eq!(
        requests[0].idempotency_key.as_deref(),
        Some("tonegate-S1-payment-method")
    );
    assert_eq!(
        pairs(&requests[0].form),
        [
            ("type", "card"),
            ("card[number]", "4242424242424242"),
            ("card[exp_month]", "7"),
            ("card[exp_year]", "2031"),
            ("card[cvc]", "837"),
            ("billing_details[address][postal_code]", "94107"),
        ]
    );
    assert_eq!(requests[1].path, "/v1/payment_intents");
    assert_eq!(
        requests[1].idempotency_key.as_deref(),
        Some("tonegate-S1-payment-intent")
    );
    // processor_parameters: strings and numbers become metadata; collection settings do not.
    assert_eq!(
        pairs(&requests[1].form),
        [
            ("payment_method", "pm_mock1"),
            ("confirm", "true"),
            ("payment_method_types[]", "card"),
            ("metadata[attempt]", "2"),
            ("metadata[invoice_id]", "INV-10482"),
            ("amount", "1999"),
            ("currency", "usd"),
            ("description", "Invoice INV-10482"),
        ]
    );
    assert_eq!(mock.payment_intents, 1);
}

#[tokio::test]
async fn tokenizing_confirms_a_setup_intent_with_the_usage_of_the_token_type() {
    let (mock, base) = stripe_server().await;
    let stripe = connector(&base, 5_000);
    for (session, token_type, usage) in [
        ("T1", TokenType::Reusable, "off_session"),
        ("T2", TokenType::PaymentMethod, "off_session"),
        ("T3", TokenType::OneTime, "on_session"),
    ] {
        let outcome = pay(
            &*stripe,
            card("4242424242424242", "0731", "837", "94107"),
            &tokenize(session, token_type),
            SystemTime::now(),
        )
        .await;
        let PaymentOutcome::Succeeded {
            transaction_id,
            token_id,
            ..
        } = outcome
        else {
            panic!("{outcome:?}")
        };
        assert_eq!(transaction_id, None);
        let token = token_id.expect("the payment method id");
        assert!(token.starts_with("pm_"), "{token}");

        let mock = mock.lock().unwrap();
        let setup = mock.requests.last().unwrap();
        assert_eq!(setup.path, "/v1/setup_intents");
        assert_eq!(
            setup.idempotency_key.as_deref(),
            Some(format!("tonegate-{session}-setup-intent").as_str())
        );
        let form = pairs(&setup.form);
        assert!(form.contains(&("payment_method", token.as_str())));
        assert!(form.contains(&("confirm", "true")));
        assert!(form.contains(&("usage", usage)), "{form:?}");
        assert!(!form.iter().any(|(k, _)| *k == "amount"));
    }
    let mock = mock.lock().unwrap();
    assert_eq!(mock.setup_intents, 3);
    assert_eq!(mock.payment_intents, 0);
}

async fn declined(number: &str, expected_code: &str) {
    let (_mock, base) = stripe_server().await;
    let stripe = connector(&base, 5_000);
    let outcome = pay(
        &*stripe,
        card(number, "0731", "837", "94107"),
        &charge("D", 500),
        SystemTime::now(),
    )
    .await;
    let PaymentOutcome::Failed {
        reason,
        decline_code,
        message,
        ..
    } = &outcome
    else {
        panic!("{outcome:?}")
    };
    assert_eq!(*reason, FailedReason::PaymentDeclined, "{outcome:?}");
    assert_eq!(decline_code.as_deref(), Some(expected_code));
    assert!(!message.is_empty());
}

#[tokio::test]
async fn declines_keep_stripes_decline_code() {
    declined("4000000000009995", "insufficient_funds").await;
    declined("4000000000000002", "generic_decline").await;
}

#[tokio::test]
async fn a_card_that_needs_3d_secure_is_declined_as_authentication_required() {
    declined("4000002500003155", "authentication_required").await;
}

async fn processor_error(fault: Fault, path: &str, timeout_ms: u64) -> (Mock, String) {
    let (mock, base) = stripe_server().await;
    mock.lock().unwrap().faults.insert(path.to_owned(), fault);
    let stripe = connector(&base, timeout_ms);
    let outcome = tokio::time::timeout(
        BOUND,
        pay(
            &*stripe,
            card("4242424242424242", "0731", "837", "94107"),
            &charge("E1", 1999),
            SystemTime::now(),
        ),
    )
    .await
    .expect("the connector gives up by itself");
    let PaymentOutcome::Failed {
        reason,
        decline_code,
        message,
        ..
    } = outcome
    else {
        panic!("{outcome:?}")
    };
    assert_eq!(reason, FailedReason::ProcessorError);
    assert_eq!(decline_code, None);
    (mock, message)
}

#[tokio::test]
async fn a_server_error_is_a_processor_error() {
    let (mock, message) = processor_error(Fault::ServerError, "/v1/payment_intents", 5_000).await;
    assert!(message.contains("500"), "{message}");
    assert_eq!(mock.lock().unwrap().payment_intents, 0);
}

#[tokio::test]
async fn a_malformed_body_is_a_processor_error() {
    let (mock, message) = processor_error(Fault::Malformed, "/v1/payment_methods", 5_000).await;
    assert!(message.contains("not JSON"), "{message}");
    // Nothing after an unreadable payment method.
    assert_eq!(mock.lock().unwrap().requests.len(), 1);
}

#[tokio::test]
async fn a_timeout_is_a_processor_error_and_is_not_retried() {
    let started = std::time::Instant::now();
    let (mock, message) = processor_error(
        Fault::Slow(Duration::from_secs(5)),
        "/v1/payment_intents",
        1_000,
    )
    .await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "bounded by the connector timeout"
    );
    assert!(
        message.contains("did not answer within 1000 ms"),
        "{message}"
    );
    // Stripe charged although the answer never arrived; the connector did not retry.
    assert_eq!(mock.lock().unwrap().payment_intents, 1);
    assert_eq!(mock.lock().unwrap().requests.len(), 2);
}

#[tokio::test]
async fn a_retried_payment_after_a_timeout_replays_instead_of_charging_again() {
    let (mock, base) = stripe_server().await;
    mock.lock().unwrap().faults.insert(
        "/v1/payment_intents".to_owned(),
        Fault::Slow(Duration::from_secs(5)),
    );
    let stripe = connector(&base, 1_000);
    let request = charge("R1", 1999);
    let first = tokio::time::timeout(
        BOUND,
        pay(
            &*stripe,
            card("4242424242424242", "0731", "837", "94107"),
            &request,
            SystemTime::now(),
        ),
    )
    .await
    .unwrap();
    assert!(matches!(
        first,
        PaymentOutcome::Failed {
            reason: FailedReason::ProcessorError,
            ..
        }
    ));
    let second = tokio::time::timeout(
        BOUND,
        pay(
            &*stripe,
            card("4242424242424242", "0731", "837", "94107"),
            &request,
            SystemTime::now(),
        ),
    )
    .await
    .unwrap();
    let PaymentOutcome::Succeeded { transaction_id, .. } = &second else {
        panic!("{second:?}")
    };
    let third = pay(
        &*stripe,
        card("4242424242424242", "0731", "837", "94107"),
        &request,
        SystemTime::now(),
    )
    .await;
    assert_eq!(second, third);

    let mock = mock.lock().unwrap();
    assert_eq!(mock.payment_intents, 1, "charged once");
    assert_eq!(transaction_id.as_deref(), Some("pi_mock2"));
    let intents: Vec<&Received> = mock
        .requests
        .iter()
        .filter(|r| r.path == "/v1/payment_intents")
        .collect();
    assert_eq!(intents.len(), 3);
    assert!(intents
        .iter()
        .all(|r| r.idempotency_key.as_deref() == Some("tonegate-R1-payment-intent")));
    assert!(!intents[0].replayed && intents[1].replayed && intents[2].replayed);
}

#[tokio::test]
async fn a_different_card_in_the_same_session_meets_stripes_idempotency_check() {
    // The keys derive from the session alone, so a second card in one session reuses them with
    // other parameters: Stripe refuses (400 idempotency_error), which is a processor error and
    // never a charge of the wrong card.
    let (mock, base) = stripe_server().await;
    let stripe = connector(&base, 5_000);
    let request = charge("C1", 700);
    let first = pay(
        &*stripe,
        card("4000000000009995", "0731", "837", "94107"),
        &request,
        SystemTime::now(),
    )
    .await;
    assert!(matches!(
        first,
        PaymentOutcome::Failed {
            reason: FailedReason::PaymentDeclined,
            ..
        }
    ));
    let second = pay(
        &*stripe,
        card("4242424242424242", "0731", "837", "94107"),
        &request,
        SystemTime::now(),
    )
    .await;
    let PaymentOutcome::Failed {
        reason, message, ..
    } = &second
    else {
        panic!("{second:?}")
    };
    assert_eq!(*reason, FailedReason::ProcessorError);
    assert!(message.contains("idempotency_error"), "{message}");
    assert_eq!(mock.lock().unwrap().payment_intents, 1);
}

#[tokio::test]
async fn a_wrong_secret_key_is_a_processor_error() {
    let (_mock, base) = stripe_server().await;
    let config: ProcessorConfig = serde_json::from_value(json!({
        "type": "stripe", "secret_key": "sk_test_wrong", "base_url": base,
    }))
    .unwrap();
    let stripe = config.build().unwrap();
    let outcome = pay(
        &*stripe,
        card("4242424242424242", "0731", "837", "94107"),
        &charge("K1", 100),
        SystemTime::now(),
    )
    .await;
    let PaymentOutcome::Failed {
        reason, message, ..
    } = outcome
    else {
        panic!()
    };
    assert_eq!(reason, FailedReason::ProcessorError);
    assert!(message.contains("401"), "{message}");
}

#[tokio::test]
async fn bank_debits_are_refused_without_a_request() {
    let (mock, base) = stripe_server().await;
    let stripe = connector(&base, 5_000);
    let outcome = pay(
        &*stripe,
        bank("110000000", "000123456789"),
        &charge("B1", 100),
        SystemTime::now(),
    )
    .await;
    let PaymentOutcome::Failed {
        reason, message, ..
    } = outcome
    else {
        panic!()
    };
    assert_eq!(reason, FailedReason::ProcessorError);
    assert!(message.contains("ach-debit"), "{message}");
    assert!(mock.lock().unwrap().requests.is_empty());
}

#[test]
fn stripe_configs_are_checked() {
    let config: ProcessorConfig = toml::from_str(
        "type = \"stripe\"\nsecret_key = \"sk_live_abc\"\ntimeout_ms = 20000\napi_version = \"2024-06-20\"\n",
    )
    .unwrap();
    assert!(!format!("{config:?}").contains("sk_live_abc"));
    assert_eq!(config.build().unwrap().name(), "stripe");

    let build = |value: Value| {
        serde_json::from_value::<ProcessorConfig>(value)
            .unwrap()
            .build()
            .err()
    };
    assert!(matches!(
        build(json!({"type": "stripe", "secret_key": "pk_test_publishable"})),
        Some(ProcessorConfigError::BadSecret { .. })
    ));
    assert!(matches!(
        build(json!({"type": "stripe", "secret_key": KEY, "base_url": "http://stripe.example"})),
        Some(ProcessorConfigError::BadUrl { .. })
    ));
    assert!(matches!(
        build(json!({"type": "stripe", "secret_key": KEY, "timeout_ms": 0})),
        Some(ProcessorConfigError::ZeroTimeout)
    ));
    assert!(serde_json::from_value::<ProcessorConfig>(
        json!({"type": "stripe", "secret_key": KEY, "typo": 1})
    )
    .is_err());
    let sandbox: ProcessorConfig = toml::from_str("type = \"sandbox\"").unwrap();
    assert_eq!(sandbox.build().unwrap().name(), "sandbox");
}

#[tokio::test]
async fn no_card_data_leaks_from_stripe_runs() {
    let (captured, _guard) = capture_traces();
    let (mock, base) = stripe_server().await;
    let stripe = connector(&base, 1_000);
    let mut outcomes = Vec::new();
    let runs: [(&str, &str, Option<Fault>); 4] = [
        ("L1", "4242424242424242", None),
        ("L2", "4000000000009995", None),
        ("L3", "4242424242424242", Some(Fault::ServerError)),
        (
            "L4",
            "4242424242424242",
            Some(Fault::Slow(Duration::from_secs(5))),
        ),
    ];
    for (session, number, fault) in runs {
        if let Some(fault) = fault {
            mock.lock()
                .unwrap()
                .faults
                .insert("/v1/payment_intents".to_owned(), fault);
        }
        let outcome = tokio::time::timeout(
            BOUND,
            pay(
                &*stripe,
                card(number, "0731", "837", "94107"),
                &charge(session, 1999),
                SystemTime::now(),
            ),
        )
        .await
        .unwrap();
        outcomes.push((number, outcome));
    }
    let logs = captured.text();
    assert!(
        logs.contains("sending request"),
        "tracing was captured:\n{logs}"
    );
    for (number, outcome) in &outcomes {
        assert_no_card_data("the logs", &logs, number, "0731", "837");
        assert_no_card_data(
            "the outcome",
            &format!("{outcome:?}"),
            number,
            "0731",
            "837",
        );
        assert_no_card_data(
            "the outcome's JSON",
            &serde_json::to_string(outcome).unwrap(),
            number,
            "0731",
            "837",
        );
    }
    assert!(matches!(outcomes[0].1, PaymentOutcome::Succeeded { .. }));
    assert!(matches!(
        outcomes[1].1,
        PaymentOutcome::Failed {
            reason: FailedReason::PaymentDeclined,
            ..
        }
    ));
    assert!(matches!(
        outcomes[3].1,
        PaymentOutcome::Failed {
            reason: FailedReason::ProcessorError,
            ..
        }
    ));
}

#[test]
fn the_leak_check_finds_card_data_and_ignores_longer_numbers() {
    assert!(support::contains_number("card[cvc]=837&", "837"));
    assert!(!support::contains_number("127.0.0.1:38837", "837"));
    let leaked = std::panic::catch_unwind(|| {
        assert_no_card_data("x", "exp 07/31", "4242424242424242", "0731", "837")
    });
    assert!(leaked.is_err());
}
