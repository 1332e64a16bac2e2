//! Connections over real HTTP on 127.0.0.1: the customer's endpoints played by axum servers
//! that answer, fail, stall or talk nonsense.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Value};
use tonegate::connection::{call, call_start, client, CallError};
use tonegate_control::config::{Auth, Connection, Method};
use tonegate_control::session::StartFailure;
use tonegate_testkit::standin;

#[derive(Default)]
struct Seen {
    calls: AtomicUsize,
    last: std::sync::Mutex<Option<(HeaderMap, Value)>>,
}

async fn serve(router: Router) -> String {
    format!("http://{}", standin::serve(router).await)
}

fn connection(url: String) -> Connection {
    Connection {
        url,
        method: Method::Post,
        headers: Default::default(),
        auth: None,
        timeout_ms: 500,
        retries: None,
    }
}

/// An endpoint that fails with `status` for its first `failures` calls, then answers `body`.
async fn flaky(failures: usize, status: StatusCode, body: Value) -> (String, Arc<Seen>) {
    let seen = Arc::new(Seen::default());
    let router = Router::new()
        .route(
            "/start",
            post(
                |State((seen, failures, status, body)): State<(
                    Arc<Seen>,
                    usize,
                    StatusCode,
                    Value,
                )>,
                 headers: HeaderMap,
                 Json(request): Json<Value>| async move {
                    let n = seen.calls.fetch_add(1, Ordering::SeqCst);
                    *seen.last.lock().unwrap() = Some((headers, request));
                    if n < failures {
                        (status, "failing on purpose".to_owned())
                    } else {
                        (StatusCode::OK, body.to_string())
                    }
                },
            ),
        )
        .with_state((seen.clone(), failures, status, body));
    (format!("{}/start", serve(router).await), seen)
}

#[tokio::test]
async fn the_start_connection_gets_the_variables_and_answers_json() {
    let (url, seen) = flaky(
        0,
        StatusCode::OK,
        json!({"amount": 4200, "currency": "USD"}),
    )
    .await;
    let mut c = connection(url);
    c.headers.insert("X-Tenant".into(), "acme".into());
    c.auth = Some(Auth::Bearer {
        token: "s3cret".into(),
    });
    let body = json!({"order_id": "10482"});
    let answer = call_start(&client(), &c, &body).await.unwrap();
    assert_eq!(answer["amount"], 4200);
    let (headers, request) = seen.last.lock().unwrap().clone().unwrap();
    assert_eq!(request, body);
    assert_eq!(headers["x-tenant"], "acme");
    assert_eq!(headers["authorization"], "Bearer s3cret");
    assert_eq!(headers["content-type"], "application/json");
}

#[tokio::test]
async fn basic_auth_is_sent_as_the_standard_header() {
    let (url, seen) = flaky(0, StatusCode::OK, json!({})).await;
    let mut c = connection(url);
    c.auth = Some(Auth::Basic {
        username: "tonegate".into(),
        password: "pw".into(),
    });
    call(&client(), &c, &json!({})).await.unwrap();
    let (headers, _) = seen.last.lock().unwrap().clone().unwrap();
    assert_eq!(headers["authorization"], "Basic dG9uZWdhdGU6cHc=");
}

#[tokio::test]
async fn server_errors_are_retried_as_configured_then_reported() {
    let (url, seen) = flaky(2, StatusCode::SERVICE_UNAVAILABLE, json!({"ok": true})).await;
    let mut c = connection(url);
    c.retries = Some(2);
    assert_eq!(
        call_start(&client(), &c, &json!({})).await.unwrap(),
        json!({"ok": true})
    );
    assert_eq!(seen.calls.load(Ordering::SeqCst), 3);

    let (url, seen) = flaky(5, StatusCode::INTERNAL_SERVER_ERROR, json!({})).await;
    let mut c = connection(url);
    c.retries = Some(1);
    assert_eq!(
        call_start(&client(), &c, &json!({})).await,
        Err(StartFailure::Status(500))
    );
    assert_eq!(seen.calls.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn client_errors_are_not_retried() {
    let (url, seen) = flaky(5, StatusCode::UNPROCESSABLE_ENTITY, json!({})).await;
    let mut c = connection(url);
    c.retries = Some(3);
    assert_eq!(
        call_start(&client(), &c, &json!({})).await,
        Err(StartFailure::Status(422))
    );
    assert_eq!(seen.calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_malformed_body_is_not_json() {
    let router = Router::new().route("/start", post(|| async { "{\"amount\": 42," }));
    let c = connection(format!("{}/start", serve(router).await));
    match call_start(&client(), &c, &json!({})).await {
        Err(StartFailure::NotJson(why)) => assert!(why.contains("EOF"), "{why}"),
        other => panic!("{other:?}"),
    }
    let router = Router::new().route("/start", post(|| async { "" }));
    let c = connection(format!("{}/start", serve(router).await));
    assert_eq!(call(&client(), &c, &json!({})).await, Ok(Value::Null));
}

#[tokio::test]
async fn a_slow_endpoint_times_out_and_a_slow_but_timely_one_does_not() {
    let router = Router::new()
        .route(
            "/slow",
            post(|| async {
                tokio::time::sleep(Duration::from_secs(3)).await;
                "{}"
            }),
        )
        .route(
            "/timely",
            post(|| async {
                tokio::time::sleep(Duration::from_millis(150)).await;
                "{\"late\": false}"
            }),
        );
    let base = serve(router).await;
    let started = Instant::now();
    let c = connection(format!("{base}/slow"));
    assert_eq!(
        call(&client(), &c, &json!({})).await,
        Err(CallError::Timeout)
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "the timeout bounds the wait"
    );
    let c = connection(format!("{base}/timely"));
    assert_eq!(
        call(&client(), &c, &json!({})).await.unwrap(),
        json!({"late": false})
    );
}

#[tokio::test]
async fn an_unreachable_endpoint_is_reported_as_such() {
    // Bind then drop a listener: its port is closed.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let c = connection(format!("http://127.0.0.1:{port}/start"));
    match call_start(&client(), &c, &json!({})).await {
        Err(StartFailure::Unreachable(_)) => {}
        other => panic!("{other:?}"),
    }
}
