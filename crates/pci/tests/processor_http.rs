//! The `http` connector against a JSON gateway on 127.0.0.1 (plain, and TLS with a
//! self-signed certificate): templates, auth modes, JSON-pointer mapping, decline and error
//! mapping, timeouts, and config errors.

mod support;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;
use support::{
    assert_no_card_data, bank, capture_traces, card, charge, self_signed, serve_tls, tokenize,
};
use tonegate_pci::{
    pay, FailedReason, PaymentOutcome, Processor, ProcessorConfig, ProcessorConfigError, TokenType,
};
use tonegate_testkit::standin::serve;

const BOUND: Duration = Duration::from_secs(20);

const CHARGE_TEMPLATE: &str = r#"{
  {% if card %}"card": {
    "number": {{ card.number }},
    "exp_month": {{ card.exp_month }},
    "exp_year": {{ card.exp_year }},
    "cvc": {{ card.security_code }},
    "postal_code": {{ card.postal_code }},
    "brand": {{ card.brand }}
  },{% else %}"bank": {
    "routing": {{ bank.routing_number }},
    "account": {{ bank.account_number }}
  },{% endif %}
  "amount": {{ amount }},
  "currency": {{ currency }},
  "description": {{ description }},
  "invoice": {{ processor_parameters.invoice_id }},
  "parameters": {{ processor_parameters }},
  "token_type": {{ token_type }},
  "session": {{ session_reference }},
  "idempotency_key": {{ idempotency_key }}
}"#;

const TOKENIZE_TEMPLATE: &str = r#"{"pan": {{ card.number }}, "exp": "{{ card.exp_month|safe }}/{{ card.exp_year|safe }}", "type": {{ token_type }}, "key": {{ idempotency_key }}}"#;

#[derive(Clone)]
struct Reply {
    status: u16,
    body: String,
    delay: Duration,
}

fn reply(status: u16, body: Value) -> Reply {
    Reply {
        status,
        body: body.to_string(),
        delay: Duration::ZERO,
    }
}

struct HmacCheck {
    secret: &'static str,
    header: &'static str,
    prefix: &'static str,
    timestamp_header: Option<&'static str>,
    base64: bool,
}

#[derive(Clone, Debug)]
struct Seen {
    method: Method,
    path: String,
    headers: HeaderMap,
    body: String,
}

#[derive(Default)]
struct Gateway {
    seen: Vec<Seen>,
    replies: HashMap<String, Reply>,
    hmac: Option<HmacCheck>,
}

type Mock = Arc<Mutex<Gateway>>;

impl Gateway {
    /// Checks the request's signature the way a receiving gateway would.
    fn signature_ok(&self, headers: &HeaderMap, body: &str) -> bool {
        let Some(check) = &self.hmac else {
            return true;
        };
        let mut mac = Hmac::<Sha256>::new_from_slice(check.secret.as_bytes()).unwrap();
        if let Some(name) = check.timestamp_header {
            let Some(timestamp) = headers.get(name).and_then(|v| v.to_str().ok()) else {
                return false;
            };
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_secs();
            if timestamp
                .parse::<u64>()
                .map_or(true, |t| t.abs_diff(now) > 300)
            {
                return false;
            }
            mac.update(format!("{timestamp}.").as_bytes());
        }
        mac.update(body.as_bytes());
        let digest = mac.finalize().into_bytes();
        let encoded = if check.base64 {
            base64::engine::general_purpose::STANDARD.encode(digest)
        } else {
            digest.iter().map(|b| format!("{b:02x}")).collect()
        };
        headers.get(check.header).and_then(|v| v.to_str().ok())
            == Some(format!("{}{encoded}", check.prefix).as_str())
    }
}

async fn handle(
    State(mock): State<Mock>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: String,
) -> Response {
    let reply = {
        let mut gateway = mock.lock().unwrap();
        let signed = gateway.signature_ok(&headers, &body);
        gateway.seen.push(Seen {
            method,
            path: uri.path().to_owned(),
            headers,
            body,
        });
        if !signed {
            reply(401, json!({"error": "bad signature"}))
        } else {
            gateway
                .replies
                .get(uri.path())
                .cloned()
                .unwrap_or_else(|| reply(404, json!({"error": "no such route"})))
        }
    };
    tokio::time::sleep(reply.delay).await;
    let mut response = (
        StatusCode::from_u16(reply.status).unwrap(),
        [("content-type", "application/json")],
        reply.body,
    )
        .into_response();
    if reply.status == 302 {
        response
            .headers_mut()
            .insert("location", "/elsewhere".parse().unwrap());
    }
    response
}

fn approved() -> Value {
    json!({"result": {"status": "approved", "id": "txn_1", "token": "tok_1"}, "message": "OK"})
}

async fn gateway() -> (Mock, String) {
    let mock = Mock::default();
    {
        let mut gateway = mock.lock().unwrap();
        gateway
            .replies
            .insert("/charge".into(), reply(200, approved()));
        gateway
            .replies
            .insert("/vault".into(), reply(200, approved()));
    }
    let router = Router::new().fallback(handle).with_state(mock.clone());
    let addr = serve(router).await;
    (mock, format!("http://{addr}"))
}

/// A config with the test templates and mapping; `extra` overrides or adds keys.
fn config(base: &str, extra: Value) -> ProcessorConfig {
    let mut value = json!({
        "type": "http",
        "url": format!("{base}/charge"),
        "tokenize_url": format!("{base}/vault"),
        "timeout_ms": 5000,
        "headers": {"X-Merchant": "m-1"},
        "charge_template": CHARGE_TEMPLATE,
        "tokenize_template": TOKENIZE_TEMPLATE,
        "response": {
            "success_path": "/result/status",
            "success_values": ["approved", "captured"],
            "transaction_id_path": "/result/id",
            "token_id_path": "/result/token",
            "decline_code_path": "/decline/code",
            "message_path": "/message",
        },
    });
    for (k, v) in extra.as_object().unwrap() {
        value[k] = v.clone();
    }
    serde_json::from_value(value).unwrap()
}

fn connector(base: &str, extra: Value) -> Box<dyn Processor> {
    config(base, extra).build().unwrap()
}

fn a_card() -> tonegate_pci::SealedCard {
    card("4242424242424242", "0731", "837", "94107")
}

fn header<'a>(seen: &'a Seen, name: &str) -> Option<&'a str> {
    seen.headers.get(name).and_then(|v| v.to_str().ok())
}

#[tokio::test]
async fn the_charge_body_renders_every_context_field() {
    let (mock, base) = gateway().await;
    let http = connector(&base, json!({}));
    let outcome = pay(&*http, a_card(), &charge("H1", 1999), SystemTime::now()).await;
    assert_eq!(
        outcome,
        PaymentOutcome::Succeeded {
            card: tonegate_pci::MaskedCard {
                payment_type: tonegate_pci::PaymentType::CreditCard,
                brand: Some(tonegate_pci::Brand::Visa),
                last4: "4242".into()
            },
            transaction_id: Some("txn_1".into()),
            token_id: Some("tok_1".into()),
        }
    );
    let gateway = mock.lock().unwrap();
    let seen = &gateway.seen[0];
    assert_eq!(seen.method, Method::POST);
    assert_eq!(seen.path, "/charge");
    assert_eq!(header(seen, "idempotency-key"), Some("tonegate-H1-charge"));
    assert_eq!(header(seen, "content-type"), Some("application/json"));
    assert_eq!(header(seen, "x-merchant"), Some("m-1"));
    assert_eq!(header(seen, "authorization"), None);
    let body: Value = serde_json::from_str(&seen.body).unwrap();
    assert_eq!(
        body,
        json!({
            "card": {"number": "4242424242424242", "exp_month": 7, "exp_year": 2031,
                     "cvc": "837", "postal_code": "94107", "brand": "visa"},
            "amount": 1999,
            "currency": "USD",
            "description": "Invoice INV-10482",
            "invoice": "INV-10482",
            "parameters": {"invoice_id": "INV-10482", "attempt": 2,
                           "is_postal_code_required": true, "min_postal_code_length": 5},
            "token_type": null,
            "session": "H1",
            "idempotency_key": "tonegate-H1-charge",
        })
    );
}

#[tokio::test]
async fn strings_are_escaped_as_json_so_a_description_cannot_inject() {
    let (mock, base) = gateway().await;
    let http = connector(&base, json!({"method": "PUT"}));
    let mut request = charge("H2", 100);
    request.description = Some("a \"quoted\", \n\"amount\": 1 }".into());
    let outcome = pay(&*http, a_card(), &request, SystemTime::now()).await;
    assert!(matches!(outcome, PaymentOutcome::Succeeded { .. }));
    let gateway = mock.lock().unwrap();
    assert_eq!(gateway.seen[0].method, Method::PUT);
    let body: Value = serde_json::from_str(&gateway.seen[0].body).unwrap();
    assert_eq!(body["description"], "a \"quoted\", \n\"amount\": 1 }");
    assert_eq!(body["amount"], 100);
}

#[tokio::test]
async fn tokenizing_uses_its_own_template_url_key_and_token_type() {
    let (mock, base) = gateway().await;
    let http = connector(&base, json!({}));
    let outcome = pay(
        &*http,
        a_card(),
        &tokenize("H3", TokenType::Reusable),
        SystemTime::now(),
    )
    .await;
    let PaymentOutcome::Succeeded { token_id, .. } = &outcome else {
        panic!("{outcome:?}")
    };
    assert_eq!(token_id.as_deref(), Some("tok_1"));
    let gateway = mock.lock().unwrap();
    let seen = &gateway.seen[0];
    assert_eq!(seen.path, "/vault");
    assert_eq!(
        header(seen, "idempotency-key"),
        Some("tonegate-H3-tokenize")
    );
    let body: Value = serde_json::from_str(&seen.body).unwrap();
    assert_eq!(
        body,
        json!({"pan": "4242424242424242", "exp": "7/2031", "type": "reusable",
               "key": "tonegate-H3-tokenize"})
    );
}

#[tokio::test]
async fn a_tokenize_without_a_token_or_without_a_template_is_a_processor_error() {
    let (mock, base) = gateway().await;
    mock.lock().unwrap().replies.insert(
        "/vault".into(),
        reply(200, json!({"result": {"status": "approved"}})),
    );
    let http = connector(&base, json!({}));
    let outcome = pay(
        &*http,
        a_card(),
        &tokenize("H4", TokenType::OneTime),
        SystemTime::now(),
    )
    .await;
    assert!(matches!(
        outcome,
        PaymentOutcome::Failed { reason: FailedReason::ProcessorError, ref message, .. }
            if message.contains("token")
    ));

    let http = connector(&base, json!({"tokenize_template": null}));
    let outcome = pay(
        &*http,
        a_card(),
        &tokenize("H5", TokenType::OneTime),
        SystemTime::now(),
    )
    .await;
    assert!(matches!(
        outcome,
        PaymentOutcome::Failed { reason: FailedReason::ProcessorError, ref message, .. }
            if message.contains("tokenize_template")
    ));
    assert_eq!(mock.lock().unwrap().seen.len(), 1);
}

#[tokio::test]
async fn bank_accounts_render_in_the_bank_context() {
    let (mock, base) = gateway().await;
    let http = connector(&base, json!({}));
    let outcome = pay(
        &*http,
        bank("110000000", "000123456789"),
        &charge("H6", 2500),
        SystemTime::now(),
    )
    .await;
    assert!(
        matches!(outcome, PaymentOutcome::Succeeded { .. }),
        "{outcome:?}"
    );
    let body: Value = serde_json::from_str(&mock.lock().unwrap().seen[0].body).unwrap();
    assert_eq!(
        body["bank"],
        json!({"routing": "110000000", "account": "000123456789"})
    );
    assert!(body.get("card").is_none());
}

#[tokio::test]
async fn bearer_and_basic_auth_send_the_authorization_header() {
    let (mock, base) = gateway().await;
    let bearer = connector(
        &base,
        json!({"auth": {"type": "bearer", "token": "tok-secret"}}),
    );
    pay(&*bearer, a_card(), &charge("A1", 100), SystemTime::now()).await;
    let basic = connector(
        &base,
        json!({"auth": {"type": "basic", "username": "merchant", "password": "p@ss:word"}}),
    );
    pay(&*basic, a_card(), &charge("A2", 100), SystemTime::now()).await;
    let gateway = mock.lock().unwrap();
    assert_eq!(
        header(&gateway.seen[0], "authorization"),
        Some("Bearer tok-secret")
    );
    let expected = base64::engine::general_purpose::STANDARD.encode("merchant:p@ss:word");
    assert_eq!(
        header(&gateway.seen[1], "authorization"),
        Some(format!("Basic {expected}").as_str())
    );
}

async fn signed(check: HmacCheck, auth: Value) -> (PaymentOutcome, Seen) {
    let (mock, base) = gateway().await;
    mock.lock().unwrap().hmac = Some(check);
    let http = connector(&base, json!({ "auth": auth }));
    let outcome = pay(&*http, a_card(), &charge("S1", 100), SystemTime::now()).await;
    let seen = mock.lock().unwrap().seen[0].clone();
    (outcome, seen)
}

#[tokio::test]
async fn hmac_signs_timestamp_dot_body_in_hex() {
    let (outcome, seen) = signed(
        HmacCheck {
            secret: "whsec_test",
            header: "x-tonegate-signature",
            prefix: "sha256=",
            timestamp_header: Some("x-tonegate-timestamp"),
            base64: false,
        },
        json!({"type": "hmac", "secret": "whsec_test", "header": "X-Tonegate-Signature",
               "prefix": "sha256=", "timestamp_header": "X-Tonegate-Timestamp"}),
    )
    .await;
    assert!(
        matches!(outcome, PaymentOutcome::Succeeded { .. }),
        "{outcome:?}"
    );
    assert!(header(&seen, "x-tonegate-signature")
        .unwrap()
        .starts_with("sha256="));
}

#[tokio::test]
async fn hmac_signs_the_body_alone_in_base64() {
    let (outcome, seen) = signed(
        HmacCheck {
            secret: "k3y",
            header: "x-signature",
            prefix: "",
            timestamp_header: None,
            base64: true,
        },
        json!({"type": "hmac", "secret": "k3y", "encoding": "base64"}),
    )
    .await;
    assert!(
        matches!(outcome, PaymentOutcome::Succeeded { .. }),
        "{outcome:?}"
    );
    assert!(header(&seen, "x-signature").unwrap().ends_with('='));
}

#[tokio::test]
async fn a_wrong_hmac_key_is_refused_by_the_gateway() {
    let (outcome, _) = signed(
        HmacCheck {
            secret: "right",
            header: "x-signature",
            prefix: "",
            timestamp_header: None,
            base64: false,
        },
        json!({"type": "hmac", "secret": "wrong"}),
    )
    .await;
    assert!(matches!(
        outcome,
        PaymentOutcome::Failed { reason: FailedReason::ProcessorError, ref message, .. }
            if message.contains("401")
    ));
}

#[tokio::test]
async fn the_hmac_timestamp_is_the_time_pay_is_given() {
    // A fixed time, 0.75 s past a whole second: the header carries whole Unix seconds, and the
    // signature covers exactly that text, a `.`, and the body as received.
    let (mock, base) = gateway().await;
    let http = connector(
        &base,
        json!({"auth": {"type": "hmac", "secret": "whsec_test", "header": "X-Tonegate-Signature",
                        "prefix": "sha256=", "timestamp_header": "X-Tonegate-Timestamp"}}),
    );
    let at = UNIX_EPOCH + Duration::from_millis(1_700_000_000_750);
    let outcome = pay(&*http, a_card(), &charge("TS1", 100), at).await;
    assert!(
        matches!(outcome, PaymentOutcome::Succeeded { .. }),
        "{outcome:?}"
    );
    let seen = mock.lock().unwrap().seen[0].clone();
    assert_eq!(header(&seen, "x-tonegate-timestamp"), Some("1700000000"));
    let mut mac = Hmac::<Sha256>::new_from_slice(b"whsec_test").unwrap();
    mac.update(b"1700000000.");
    mac.update(seen.body.as_bytes());
    let expected: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(
        header(&seen, "x-tonegate-signature"),
        Some(format!("sha256={expected}").as_str())
    );

    // The same card and request at another time: another timestamp, another signature, the
    // same body.
    let later = at + Duration::from_secs(61);
    pay(&*http, a_card(), &charge("TS1", 100), later).await;
    let again = mock.lock().unwrap().seen[1].clone();
    assert_eq!(again.body, seen.body);
    assert_eq!(header(&again, "x-tonegate-timestamp"), Some("1700000061"));
    assert_ne!(
        header(&again, "x-tonegate-signature"),
        header(&seen, "x-tonegate-signature")
    );
}

#[tokio::test]
async fn json_pointers_read_nested_numeric_and_boolean_answers() {
    let (mock, base) = gateway().await;
    mock.lock().unwrap().replies.insert(
        "/charge".into(),
        // Numeric, and short: `pay` redacts a standalone run of six or more digits in an id
        // (it could be an echoed card number), numeric ids included.
        reply(200, json!({"data": [{"ok": true, "txn": 12345}]})),
    );
    let http = connector(
        &base,
        json!({"response": {"success_path": "/data/0/ok", "transaction_id_path": "/data/0/txn"}}),
    );
    let outcome = pay(&*http, a_card(), &charge("P1", 100), SystemTime::now()).await;
    let PaymentOutcome::Succeeded { transaction_id, .. } = outcome else {
        panic!()
    };
    assert_eq!(transaction_id.as_deref(), Some("12345"));
}

async fn answered(status: u16, body: &str) -> PaymentOutcome {
    let (mock, base) = gateway().await;
    mock.lock().unwrap().replies.insert(
        "/charge".into(),
        Reply {
            status,
            body: body.to_owned(),
            delay: Duration::ZERO,
        },
    );
    let http = connector(&base, json!({}));
    pay(&*http, a_card(), &charge("M1", 100), SystemTime::now()).await
}

fn declined_with(outcome: &PaymentOutcome) -> Option<(&str, &str)> {
    match outcome {
        PaymentOutcome::Failed {
            reason: FailedReason::PaymentDeclined,
            decline_code,
            message,
            ..
        } => Some((decline_code.as_deref().unwrap(), message.as_str())),
        _ => None,
    }
}

fn is_processor_error(outcome: &PaymentOutcome) -> bool {
    matches!(
        outcome,
        PaymentOutcome::Failed {
            reason: FailedReason::ProcessorError,
            decline_code: None,
            ..
        }
    )
}

#[tokio::test]
async fn answers_map_to_approvals_declines_and_errors() {
    let declined_200 = r#"{"result": {"status": "declined"}, "decline": {"code": "do_not_honor"}, "message": "Do not honor"}"#;
    assert_eq!(
        declined_with(&answered(200, declined_200).await),
        Some(("do_not_honor", "Do not honor"))
    );
    assert_eq!(
        declined_with(&answered(200, r#"{"result": {}}"#).await),
        Some(("declined", ""))
    );
    assert_eq!(
        declined_with(&answered(402, r#"{"message": "Payment required"}"#).await),
        Some(("declined", "Payment required"))
    );
    assert_eq!(
        declined_with(&answered(422, r#"{"decline": {"code": "expired_card"}}"#).await),
        Some(("expired_card", ""))
    );
    let bad_request = answered(400, r#"{"message": "missing field"}"#).await;
    assert!(is_processor_error(&bad_request), "{bad_request:?}");
    let server_error = answered(503, r#"{"message": "maintenance"}"#).await;
    assert!(is_processor_error(&server_error), "{server_error:?}");
    let html = answered(200, "<html>oops</html>").await;
    assert!(is_processor_error(&html), "{html:?}");
    let empty = answered(200, "").await;
    assert!(is_processor_error(&empty), "{empty:?}");
    assert_eq!(
        answered(200, r#"{"result": {"status": "captured", "id": "t9"}}"#)
            .await
            .clone(),
        PaymentOutcome::Succeeded {
            card: a_card().masked(),
            transaction_id: Some("t9".into()),
            token_id: None
        }
    );
}

#[tokio::test]
async fn redirects_are_not_followed() {
    let (mock, base) = gateway().await;
    mock.lock()
        .unwrap()
        .replies
        .insert("/charge".into(), reply(302, json!({})));
    let http = connector(&base, json!({}));
    let outcome = pay(&*http, a_card(), &charge("R1", 100), SystemTime::now()).await;
    assert!(is_processor_error(&outcome), "{outcome:?}");
    let gateway = mock.lock().unwrap();
    assert_eq!(gateway.seen.len(), 1, "the card body was not resent");
}

#[tokio::test]
async fn a_timeout_is_a_processor_error_and_is_not_retried() {
    let (mock, base) = gateway().await;
    mock.lock().unwrap().replies.insert(
        "/charge".into(),
        Reply {
            status: 200,
            body: approved().to_string(),
            delay: Duration::from_secs(5),
        },
    );
    let http = connector(&base, json!({"timeout_ms": 1000}));
    let started = std::time::Instant::now();
    let outcome = tokio::time::timeout(
        BOUND,
        pay(&*http, a_card(), &charge("T1", 100), SystemTime::now()),
    )
    .await
    .unwrap();
    assert!(started.elapsed() < Duration::from_secs(5));
    let PaymentOutcome::Failed {
        reason, message, ..
    } = &outcome
    else {
        panic!("{outcome:?}")
    };
    assert_eq!(*reason, FailedReason::ProcessorError);
    assert!(
        message.contains("did not answer within 1000 ms"),
        "{message}"
    );
    assert_eq!(
        mock.lock().unwrap().seen.len(),
        1,
        "sent once, never retried"
    );
}

#[tokio::test]
async fn a_refused_connection_is_a_processor_error() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let http = connector(&format!("http://{addr}"), json!({"timeout_ms": 2000}));
    let outcome = tokio::time::timeout(
        BOUND,
        pay(&*http, a_card(), &charge("C1", 100), SystemTime::now()),
    )
    .await
    .unwrap();
    let PaymentOutcome::Failed {
        reason, message, ..
    } = &outcome
    else {
        panic!("{outcome:?}")
    };
    assert_eq!(*reason, FailedReason::ProcessorError);
    assert!(message.contains("could not connect"), "{message}");
}

#[tokio::test]
async fn tls_with_a_self_signed_certificate_trusted_through_the_config() {
    let (pem, server_config) = self_signed();
    let mock = Mock::default();
    mock.lock()
        .unwrap()
        .replies
        .insert("/charge".into(), reply(200, approved()));
    let router = Router::new().fallback(handle).with_state(mock.clone());
    let addr = serve_tls(router, server_config).await;
    let base = format!("https://127.0.0.1:{}", addr.port());

    let trusting = connector(&base, json!({"ca_certificate_pem": pem}));
    let outcome = tokio::time::timeout(
        BOUND,
        pay(
            &*trusting,
            a_card(),
            &charge("TLS1", 100),
            SystemTime::now(),
        ),
    )
    .await
    .unwrap();
    assert!(
        matches!(outcome, PaymentOutcome::Succeeded { .. }),
        "{outcome:?}"
    );
    assert_eq!(mock.lock().unwrap().seen.len(), 1);

    let untrusting = connector(&base, json!({}));
    let outcome = tokio::time::timeout(
        BOUND,
        pay(
            &*untrusting,
            a_card(),
            &charge("TLS2", 100),
            SystemTime::now(),
        ),
    )
    .await
    .unwrap();
    let PaymentOutcome::Failed {
        reason, message, ..
    } = &outcome
    else {
        panic!("{outcome:?}")
    };
    assert_eq!(*reason, FailedReason::ProcessorError);
    assert!(message.contains("could not connect"), "{message}");
    assert_eq!(
        mock.lock().unwrap().seen.len(),
        1,
        "no card sent to an untrusted server"
    );
}

fn build_error(extra: Value) -> ProcessorConfigError {
    match config("http://127.0.0.1:9", extra).build() {
        Ok(_) => panic!("built"),
        Err(e) => e,
    }
}

#[test]
fn config_errors_are_typed_and_caught_at_build() {
    let error =
        build_error(json!({"charge_template": "{\n  \"a\": 1,\n  \"b\": {% if %}2{% endif %}\n}"}));
    let ProcessorConfigError::BadTemplate { template, line, .. } = &error else {
        panic!("{error:?}")
    };
    assert_eq!((*template, *line), ("charge_template", 3));
    assert!(
        error.to_string().starts_with("charge_template: line 3"),
        "{error}"
    );

    let error = build_error(json!({"tokenize_template": "{\"a\": {{ card.number }"}));
    assert!(
        matches!(
            error,
            ProcessorConfigError::BadTemplate {
                template: "tokenize_template",
                line: 1,
                ..
            }
        ),
        "{error:?}"
    );

    let error = build_error(json!({"charge_template": "{\"amount\": {{ amount }} \"x\": 1}"}));
    assert!(
        matches!(
            error,
            ProcessorConfigError::TemplateNotJson {
                template: "charge_template",
                ..
            }
        ),
        "{error:?}"
    );
    // The sample card used to check the template never shows in the error.
    assert!(!format!("{error} {error:?}").contains("4242"));

    assert!(matches!(
        build_error(
            json!({"ca_certificate_pem": "-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----\n"})
        ),
        ProcessorConfigError::BadCaCertificate { .. }
    ));
    assert!(matches!(
        build_error(json!({"ca_certificate_pem": "not a pem"})),
        ProcessorConfigError::BadCaCertificate { .. }
    ));
    assert!(matches!(
        build_error(json!({"url": "http://gateway.example.com/charge"})),
        ProcessorConfigError::BadUrl { field: "url", .. }
    ));
    assert!(matches!(
        build_error(json!({"tokenize_url": "::"})),
        ProcessorConfigError::BadUrl {
            field: "tokenize_url",
            ..
        }
    ));
    assert!(matches!(
        build_error(json!({"headers": {"Bad Header": "x"}})),
        ProcessorConfigError::BadHeader { .. }
    ));
    let error = build_error(json!({"headers": {"X-Key": "line\nbreak-secret"}}));
    assert!(matches!(error, ProcessorConfigError::BadHeader { .. }));
    assert!(!format!("{error} {error:?}").contains("break-secret"));
    assert!(matches!(
        build_error(json!({"response": {"success_path": "result.status"}})),
        ProcessorConfigError::BadJsonPointer {
            field: "success_path",
            ..
        }
    ));
    assert!(matches!(
        build_error(json!({"response": {"success_path": "/ok", "success_values": []}})),
        ProcessorConfigError::NoSuccessValues
    ));
    assert!(matches!(
        build_error(json!({"auth": {"type": "hmac", "secret": ""}})),
        ProcessorConfigError::BadSecret { .. }
    ));
    assert!(matches!(
        build_error(json!({"timeout_ms": 0})),
        ProcessorConfigError::ZeroTimeout
    ));

    // Unknown keys and auth types are refused when the file is read.
    let mut value = json!({"type": "http", "url": "https://x", "charge_template": "{}",
                           "response": {"success_path": "/ok"}, "retries": 3});
    assert!(serde_json::from_value::<ProcessorConfig>(value.clone()).is_err());
    value.as_object_mut().unwrap().remove("retries");
    value["auth"] = json!({"type": "oauth"});
    assert!(serde_json::from_value::<ProcessorConfig>(value).is_err());
}

#[test]
fn secrets_in_the_config_are_redacted() {
    let config: ProcessorConfig = toml::from_str(
        r#"
type = "http"
url = "https://gateway.example.com/charge"
charge_template = '{"pan": {{ card.number }}}'
headers = { "X-Api-Key" = "hdr-secret-1" }
[auth]
type = "basic"
username = "merchant"
password = "pw-secret-2"
[response]
success_path = "/approved"
"#,
    )
    .unwrap();
    let debug = format!("{config:?}");
    assert!(
        debug.contains("X-Api-Key") && debug.contains("merchant"),
        "{debug}"
    );
    assert!(
        !debug.contains("hdr-secret-1") && !debug.contains("pw-secret-2"),
        "{debug}"
    );
    let http = config.build().unwrap();
    assert_eq!(http.name(), "http");
}

#[tokio::test]
async fn a_template_that_fails_for_one_payment_says_where_without_the_values() {
    let (mock, base) = gateway().await;
    // Renders for cards (the build-time check), fails for bank accounts: string + number.
    let template =
        r#"{% if bank %}{"n": {{ bank.routing_number + 1 }}}{% else %}{"ok": true}{% endif %}"#;
    let http = connector(&base, json!({"charge_template": template}));
    let outcome = pay(
        &*http,
        bank("110000000", "000123456789"),
        &charge("F1", 100),
        SystemTime::now(),
    )
    .await;
    let PaymentOutcome::Failed {
        reason, message, ..
    } = &outcome
    else {
        panic!("{outcome:?}")
    };
    assert_eq!(*reason, FailedReason::ProcessorError);
    assert!(
        message.contains("charge_template failed to render (line 1"),
        "{message}"
    );
    assert!(!message.contains("110000000") && !message.contains("000123456789"));
    assert!(mock.lock().unwrap().seen.is_empty(), "nothing sent");
}

#[tokio::test]
async fn no_card_data_leaks_from_http_runs() {
    let (captured, _guard) = capture_traces();
    let (mock, base) = gateway().await;
    let http = connector(&base, json!({"timeout_ms": 1000}));
    let echo = "Card 4242424242424242 exp 07/31 cvc 837 declined";
    let answers = [
        reply(200, approved()),
        reply(
            200,
            json!({"result": {"status": "declined"}, "decline": {"code": "do_not_honor"},
                          "message": echo}),
        ),
        reply(500, json!({"message": echo})),
        Reply {
            status: 200,
            body: approved().to_string(),
            delay: Duration::from_secs(5),
        },
    ];
    let mut outcomes = Vec::new();
    for (i, answer) in answers.into_iter().enumerate() {
        mock.lock()
            .unwrap()
            .replies
            .insert("/charge".into(), answer);
        let outcome = tokio::time::timeout(
            BOUND,
            pay(
                &*http,
                a_card(),
                &charge(&format!("L{i}"), 1999),
                SystemTime::now(),
            ),
        )
        .await
        .unwrap();
        outcomes.push(outcome);
    }
    assert!(matches!(outcomes[0], PaymentOutcome::Succeeded { .. }));
    assert_eq!(
        declined_with(&outcomes[1]).map(|d| d.0),
        Some("do_not_honor")
    );
    assert!(is_processor_error(&outcomes[2]) && is_processor_error(&outcomes[3]));
    let logs = captured.text();
    assert!(
        logs.contains("sending request"),
        "tracing was captured:\n{logs}"
    );
    assert_no_card_data("the logs", &logs, "4242424242424242", "0731", "837");
    for outcome in &outcomes {
        assert_no_card_data(
            "the outcome",
            &format!("{outcome:?}"),
            "4242424242424242",
            "0731",
            "837",
        );
        let json = serde_json::to_string(outcome).unwrap();
        assert_no_card_data(
            "the outcome's JSON",
            &json,
            "4242424242424242",
            "0731",
            "837",
        );
    }
}
