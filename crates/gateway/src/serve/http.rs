//! The HTTP router: the telephony and agent routes behind their bearer tokens, health,
//! readiness, metrics and the OpenAPI document.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, Request, State as AxumState};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};

use super::agent::{
    call_by_sip_call_id, invoke, list_functions, session_action, session_events, session_state,
};
use super::gateway::Gateway;
use super::openapi::ApiDoc;
use super::telephony::{create_call, end_call};

pub(super) fn router(gateway: Arc<Gateway>) -> Router {
    let limit = gateway.config.body_limit_bytes;
    let telephony = Router::new()
        .route("/v1/calls", post(create_call))
        .route("/v1/calls/{id}", delete(end_call))
        .route_layer(middleware::from_fn_with_state(
            gateway.clone(),
            telephony_auth,
        ));
    let agent = Router::new()
        .route("/v1/functions", get(list_functions))
        .route("/v1/calls/{id}/sessions", post(invoke))
        .route(
            "/v1/calls/by-sip-call-id/{sip_call_id}",
            get(call_by_sip_call_id),
        )
        .route("/v1/sessions/{id}", get(session_state))
        .route("/v1/sessions/{id}/events", get(session_events))
        .route("/v1/sessions/{id}/actions", post(session_action))
        .route_layer(middleware::from_fn_with_state(gateway.clone(), agent_auth));
    Router::new()
        .merge(telephony)
        .merge(agent)
        .route("/healthz", get(|| async { "ok" }))
        .route("/metrics", get(metrics))
        .route(
            "/openapi.json",
            get(|| async { Json(<ApiDoc as utoipa::OpenApi>::openapi()) }),
        )
        .route("/readyz", get(readyz))
        .layer(DefaultBodyLimit::max(limit))
        .with_state(gateway)
}

fn authorized(tokens: &[String], request: &Request) -> bool {
    let Some(value) = request.headers().get(header::AUTHORIZATION) else {
        return false;
    };
    let Some(token) = value.to_str().ok().and_then(|v| v.strip_prefix("Bearer ")) else {
        return false;
    };
    tokens
        .iter()
        .any(|t| constant_time_eq(t.as_bytes(), token.as_bytes()))
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The request goes on with a token of `tokens`; otherwise an empty 401.
async fn with_token(tokens: &[String], request: Request, next: Next) -> Response {
    if authorized(tokens, &request) {
        next.run(request).await
    } else {
        StatusCode::UNAUTHORIZED.into_response()
    }
}

async fn telephony_auth(
    AxumState(g): AxumState<Arc<Gateway>>,
    request: Request,
    next: Next,
) -> Response {
    with_token(&g.config.telephony_tokens, request, next).await
}

async fn agent_auth(
    AxumState(g): AxumState<Arc<Gateway>>,
    request: Request,
    next: Next,
) -> Response {
    with_token(&g.config.agent_tokens, request, next).await
}

async fn metrics(AxumState(g): AxumState<Arc<Gateway>>) -> Response {
    if let Some(outbox) = &g.outbox {
        if let Ok(stats) = outbox.stats().await {
            g.metrics.outbox_depth.set(stats.pending as i64);
            g.metrics.outbox_retries.set(stats.retries as i64);
        }
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        g.metrics.encode(),
    )
        .into_response()
}

async fn readyz(AxumState(g): AxumState<Arc<Gateway>>) -> Response {
    if g.draining.load(Ordering::SeqCst) {
        (StatusCode::SERVICE_UNAVAILABLE, "draining").into_response()
    } else {
        "ready".into_response()
    }
}
