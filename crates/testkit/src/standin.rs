//! Stand-ins for the customer's start, success and failure endpoints: a real HTTP server on
//! 127.0.0.1 that answers the start connection and records what every connection sends; and
//! [`serve`], which puts any test's own stand-in (a processor, an endpoint that fails or
//! stalls) on 127.0.0.1.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Value};

/// What the stand-in customer endpoints received, in order: (path, body).
pub type Received = Arc<Mutex<Vec<(String, Value)>>>;

/// Starts stand-ins for the customer's endpoints on 127.0.0.1: `/start` answers `start` (or
/// `status` when it is not 200), `/success` and `/failure` record what they receive.
pub async fn customer_endpoints(
    start: Value,
    status: u16,
) -> anyhow::Result<(SocketAddr, Received)> {
    let received: Received = Arc::default();
    let state = (received.clone(), start, status);
    let app = Router::new()
        .route(
            "/start",
            post(
                |State((r, start, status)): State<(Received, Value, u16)>, Json(body): Json<Value>| async move {
                    r.lock().unwrap().push(("/start".into(), body));
                    (axum::http::StatusCode::from_u16(status).unwrap(), Json(start))
                },
            ),
        )
        .route(
            "/success",
            post(|State((r, _, _)): State<(Received, Value, u16)>, Json(body): Json<Value>| async move {
                r.lock().unwrap().push(("/success".into(), body));
                Json(json!({"ok": true}))
            }),
        )
        .route(
            "/failure",
            post(|State((r, _, _)): State<(Received, Value, u16)>, Json(body): Json<Value>| async move {
                r.lock().unwrap().push(("/failure".into(), body));
                Json(json!({"ok": true}))
            }),
        )
        .with_state(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok((addr, received))
}

/// Serves `router` on 127.0.0.1 (a free port) until the runtime ends; its address. Panics
/// when it cannot bind (for tests).
pub async fn serve(router: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a free port on 127.0.0.1");
    let addr = listener.local_addr().expect("a bound listener's address");
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    addr
}

/// A function file whose connections point at the stand-ins on `customer`.
pub fn demo_function(customer: SocketAddr) -> String {
    format!(
        "name: collect_payment
purpose: Collects a card payment for the caller's outstanding order once they agree to pay.
set_variables:
  order_id: '{{{{ vars.get(\"order_id\", \"10482\") }}}}'
  email: '{{{{ refs.email }}}}'
connections:
  start:
    url: http://{customer}/start
    timeout_ms: 2000
  success:
    url: http://{customer}/success
  failure:
    url: http://{customer}/failure
limits:
  inter_digit_timeout_seconds: 3
  first_key_timeout_seconds: 8
"
    )
}
