//! Calling a voice payment function's connection over HTTP: JSON body out, JSON body back.
//!
//! The start connection is called with [`call_start`], synchronously with its timeout and its
//! `retries` (an unreachable or 5xx start connection is retried with a short doubling backoff;
//! a 4xx is final); its result goes back to the session as
//! `tonegate_control::session::Input::StartResult`. Success and failure connections are single
//! [`call`]s made by the durable outbox ([`crate::outbox`]), which owns their retries.
//!
//! Here, not in `tonegate-control`, because this crate is the one with sockets and clocks:
//! control describes the connections (`tonegate_control::config::Connection`) and decides when
//! to call them; this module makes the calls.

use std::time::Duration;

use serde_json::Value;
use tonegate_control::config::{Auth, Connection, Method};
use tonegate_control::session::StartFailure;

/// Why a connection call failed.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum CallError {
    /// Could not connect or send.
    #[error("unreachable: {0}")]
    Unreachable(String),
    /// No answer within the timeout.
    #[error("no answer within the timeout")]
    Timeout,
    /// A status outside 2xx.
    #[error("answered HTTP {0}")]
    Status(u16),
    /// A 2xx answer whose body is not JSON (an empty body counts as `null`).
    #[error("answered a body that is not JSON: {0}")]
    NotJson(String),
}

/// A failed start connection, as the session takes it.
impl From<CallError> for StartFailure {
    fn from(e: CallError) -> Self {
        match e {
            CallError::Unreachable(why) => StartFailure::Unreachable(why),
            CallError::Timeout => StartFailure::Timeout,
            CallError::Status(code) => StartFailure::Status(code),
            CallError::NotJson(why) => StartFailure::NotJson(why),
        }
    }
}

/// One HTTP client for all connections (connection pooling); build once.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .user_agent(concat!("tonegate/", env!("CARGO_PKG_VERSION")))
        .build()
        .expect("a client with default settings builds")
}

/// Sends `body` to `connection` once and returns its JSON answer.
pub async fn call(
    client: &reqwest::Client,
    connection: &Connection,
    body: &Value,
) -> Result<Value, CallError> {
    let method = match connection.method {
        Method::Post => reqwest::Method::POST,
        Method::Put => reqwest::Method::PUT,
        Method::Patch => reqwest::Method::PATCH,
    };
    let mut request = client
        .request(method, &connection.url)
        .timeout(connection.timeout())
        .json(body);
    for (name, value) in &connection.headers {
        request = request.header(name, value);
    }
    request = match &connection.auth {
        Some(Auth::Bearer { token }) => request.bearer_auth(token),
        Some(Auth::Basic { username, password }) => request.basic_auth(username, Some(password)),
        None => request,
    };
    let response = request.send().await.map_err(classify)?;
    let status = response.status();
    if !status.is_success() {
        return Err(CallError::Status(status.as_u16()));
    }
    let bytes = response.bytes().await.map_err(classify)?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Null);
    }
    serde_json::from_slice(&bytes).map_err(|e| CallError::NotJson(e.to_string()))
}

/// Calls the start connection with its retries: unreachable, timed-out and 5xx attempts are
/// retried after 100 ms, 200 ms, 400 ms, ...; a 4xx or a body that is not JSON is final.
pub async fn call_start(
    client: &reqwest::Client,
    connection: &Connection,
    body: &Value,
) -> Result<Value, StartFailure> {
    let attempts = connection.retries.unwrap_or(0) + 1;
    let mut delay = Duration::from_millis(100);
    let mut last = CallError::Timeout;
    for attempt in 1..=attempts {
        match call(client, connection, body).await {
            Ok(value) => return Ok(value),
            Err(e @ (CallError::Status(400..=499) | CallError::NotJson(_))) => return Err(e.into()),
            Err(e) => {
                tracing::warn!(attempt, attempts, error = %e, url = %connection.url, "start connection attempt failed");
                last = e;
            }
        }
        if attempt < attempts {
            tokio::time::sleep(delay).await;
            delay *= 2;
        }
    }
    Err(last.into())
}

fn classify(e: reqwest::Error) -> CallError {
    if e.is_timeout() {
        CallError::Timeout
    } else {
        CallError::Unreachable(e.to_string())
    }
}
