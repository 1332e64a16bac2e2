//! The agent side's API: functions as LLM tools, payment sessions invoked on a call, their
//! state, their events as Server-Sent Events, and the agent's actions. Masked only.

use std::convert::Infallible;
use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path as UrlPath, State as AxumState};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures_util::stream::{self, Stream, StreamExt};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio::sync::{broadcast, oneshot};
use tonegate_call::InvokeError;
use tonegate_control::session::{AgentAction, AgentEvent, Invocation, State};
use tonegate_control::tools::{anthropic_tools, openai_tools};

use super::call_task::CallCommand;
use super::error::{bad_json, error, ApiError};
use super::gateway::{Gateway, SessionEntry};

/// The configured functions as LLM tool definitions (OpenAI and Anthropic shapes).
#[utoipa::path(get, path = "/v1/functions", responses((status = 200, description = "`{\"functions\": [{\"name\", \"openai\": [...], \"anthropic\": [...]}]}`"), (status = 401)))]
pub(super) async fn list_functions(AxumState(g): AxumState<Arc<Gateway>>) -> Response {
    let functions: Vec<Value> = g
        .functions
        .values()
        .map(|f| json!({ "name": f.name, "openai": openai_tools(f), "anthropic": anthropic_tools(f) }))
        .collect();
    Json(json!({ "functions": functions })).into_response()
}

/// A call created over the ng protocol, found by its SIP Call-ID.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CallBySipCallId {
    /// tonegate's call id: start a session with `POST /v1/calls/{call_id}/sessions`.
    pub call_id: String,
    /// The SIP Call-ID asked for.
    pub sip_call_id: String,
}

/// Finds a call that a SIP proxy created over the ng protocol by its SIP Call-ID (the agent
/// side knows the SIP call, not tonegate's id). Percent-encode the Call-ID in the path (`@`
/// as `%40`, `/` as `%2F`).
#[utoipa::path(get, path = "/v1/calls/by-sip-call-id/{sip_call_id}", params(("sip_call_id" = String, Path, description = "the SIP Call-ID, percent-encoded")), responses(
    (status = 200, body = CallBySipCallId), (status = 401),
    (status = 404, body = ApiError, description = "no call with this SIP Call-ID is up")))]
pub(super) async fn call_by_sip_call_id(
    AxumState(g): AxumState<Arc<Gateway>>,
    UrlPath(sip_call_id): UrlPath<String>,
) -> Response {
    let call = g
        .ng_calls
        .lock()
        .expect("not poisoned")
        .get(&sip_call_id)
        .map(|c| c.call.clone());
    match call {
        Some(call_id) => Json(CallBySipCallId {
            call_id,
            sip_call_id,
        })
        .into_response(),
        None => error(
            StatusCode::NOT_FOUND,
            format!(
                "no call with SIP Call-ID `{sip_call_id}`: calls are found by Call-ID once the \
                 SIP proxy's offer reached tonegate's ng listener, until the delete"
            ),
        ),
    }
}

/// `POST /v1/calls/{id}/sessions`: invoke a function on a call.
#[derive(Debug, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InvokeRequest {
    /// The function's name.
    pub function: String,
    /// Input parameters (checked against the input schema).
    #[serde(default)]
    #[schema(value_type = Object)]
    pub params: serde_json::Map<String, Value>,
    /// Reference variables.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub refs: serde_json::Map<String, Value>,
    /// Input variables.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub vars: serde_json::Map<String, Value>,
}

/// Invokes a function on a call: a payment session starts.
#[utoipa::path(post, path = "/v1/calls/{id}/sessions", params(("id" = String, Path)), request_body = InvokeRequest, responses(
    (status = 201, body = SessionCreated), (status = 400, body = ApiError), (status = 401),
    (status = 404, body = ApiError), (status = 409, body = ApiError, description = "a session is already active, or the call ended"),
    (status = 422, body = ApiError, description = "params do not match the input schema")))]
pub(super) async fn invoke(
    AxumState(g): AxumState<Arc<Gateway>>,
    UrlPath(call_id): UrlPath<String>,
    body: Result<Json<InvokeRequest>, JsonRejection>,
) -> Response {
    let Json(body) = match body {
        Ok(b) => b,
        Err(e) => return bad_json(e),
    };
    if let Some(refused) = g.refuse_if_draining() {
        return refused;
    }
    let Some(function) = g.functions.get(&body.function).cloned() else {
        return error(
            StatusCode::NOT_FOUND,
            format!("no function `{}`", body.function),
        );
    };
    let Some(commands) = g
        .calls
        .lock()
        .expect("not poisoned")
        .get(&call_id)
        .map(|c| c.commands.clone())
    else {
        return error(StatusCode::NOT_FOUND, format!("no call `{call_id}`"));
    };
    let reference = g.id("ps");
    let (events, _) = broadcast::channel(256);
    g.sessions.lock().expect("not poisoned").insert(
        reference.clone(),
        SessionEntry {
            call: call_id.clone(),
            state: State::Starting,
            history: Vec::new(),
            events,
        },
    );
    let (reply, answer) = oneshot::channel();
    let sent = commands.send(CallCommand::Invoke {
        function,
        reference: reference.clone(),
        invocation: Invocation {
            params: body.params,
            refs: body.refs,
            vars: body.vars,
        },
        reply,
    });
    let result = match sent {
        Ok(()) => answer.await.unwrap_or(Err(InvokeError::CallEnded)),
        Err(_) => Err(InvokeError::CallEnded),
    };
    match result {
        Ok(()) => {
            g.metrics.sessions.inc();
            (
                StatusCode::CREATED,
                Json(SessionCreated {
                    session_reference_id: reference,
                    call_id,
                }),
            )
                .into_response()
        }
        Err(e) => {
            g.sessions.lock().expect("not poisoned").remove(&reference);
            let status = match e {
                InvokeError::InvalidParams(_) => StatusCode::UNPROCESSABLE_ENTITY,
                _ => StatusCode::CONFLICT,
            };
            error(status, e.to_string())
        }
    }
}

/// A session's state, masked card and outcome.
#[utoipa::path(get, path = "/v1/sessions/{id}", params(("id" = String, Path)), responses(
    (status = 200, description = "`{session_reference_id, call_id, state, card, outcome}`"), (status = 401), (status = 404, body = ApiError)))]
pub(super) async fn session_state(
    AxumState(g): AxumState<Arc<Gateway>>,
    UrlPath(id): UrlPath<String>,
) -> Response {
    let sessions = g.sessions.lock().expect("not poisoned");
    let Some(entry) = sessions.get(&id) else {
        return error(StatusCode::NOT_FOUND, format!("no session `{id}`"));
    };
    let card = entry.history.iter().rev().find_map(|e| match e {
        AgentEvent::MaskedSummary { card } => Some(card.clone()),
        AgentEvent::Outcome { card, .. } => card.clone(),
        _ => None,
    });
    let outcome = entry
        .history
        .iter()
        .rev()
        .find(|e| matches!(e, AgentEvent::Outcome { .. }));
    Json(json!({
        "session_reference_id": id,
        "call_id": entry.call,
        "state": entry.state,
        "card": card,
        "outcome": outcome,
    }))
    .into_response()
}

/// The session's events as Server-Sent Events: every event so far, then live ones, ending with
/// the outcome. Each `data:` is a JSON agent event with a `type`: `say`, `state_changed`,
/// `field_started`, `field_progress`, `field_completed`, `field_rejected`, `masked_summary`,
/// `outcome`. Masked only.
#[utoipa::path(get, path = "/v1/sessions/{id}/events", params(("id" = String, Path)), responses(
    (status = 200, content_type = "text/event-stream", description = "the event stream"), (status = 401), (status = 404, body = ApiError)))]
pub(super) async fn session_events(
    AxumState(g): AxumState<Arc<Gateway>>,
    UrlPath(id): UrlPath<String>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, Response> {
    let (history, live) = {
        let sessions = g.sessions.lock().expect("not poisoned");
        let Some(entry) = sessions.get(&id) else {
            return Err(error(StatusCode::NOT_FOUND, format!("no session `{id}`")));
        };
        (entry.history.clone(), entry.events.subscribe())
    };
    let ended = history
        .iter()
        .any(|e| matches!(e, AgentEvent::Outcome { .. }));
    let to_event = |e: AgentEvent| {
        Ok::<_, Infallible>(Event::default().json_data(&e).expect("events serialize"))
    };
    let past = stream::iter(history.into_iter().map(to_event));
    let live = tokio_stream::wrappers::BroadcastStream::new(live)
        .filter_map(|e| async move { e.ok() })
        .take_while(|e| {
            let last = matches!(e, AgentEvent::Outcome { .. });
            async move { !last }
        });
    // The outcome itself ends the stream: send it, then stop.
    let live: std::pin::Pin<Box<dyn Stream<Item = Result<Event, Infallible>> + Send>> = if ended {
        Box::pin(stream::empty())
    } else {
        let g2 = g.clone();
        let id2 = id.clone();
        Box::pin(live.map(to_event).chain(stream::once(async move {
            let outcome = g2
                .sessions
                .lock()
                .expect("not poisoned")
                .get(&id2)
                .and_then(|e| {
                    e.history
                        .iter()
                        .rev()
                        .find(|e| matches!(e, AgentEvent::Outcome { .. }))
                        .cloned()
                });
            Ok(match outcome {
                Some(o) => Event::default().json_data(&o).expect("events serialize"),
                None => Event::default().comment("stream ended"),
            })
        })))
    };
    Ok(Sse::new(past.chain(live)).keep_alive(KeepAlive::default()))
}

/// `POST /v1/sessions/{id}/actions`.
#[derive(Debug, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ActionRequest {
    /// `confirm_amount`, `confirm_card`, `decline`, `cancel`, `pause`, `resume`,
    /// `different_card`.
    #[schema(value_type = String, example = "confirm_amount")]
    pub action: AgentAction,
}

/// A started payment session.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SessionCreated {
    /// The session's reference (`session_reference_id` on the connections).
    pub session_reference_id: String,
    /// The call it runs on.
    pub call_id: String,
}

/// An agent action: `confirm_amount`, `confirm_card`, `decline`, `cancel`, `pause`, `resume`,
/// `different_card`.
#[utoipa::path(post, path = "/v1/sessions/{id}/actions", params(("id" = String, Path)), request_body = ActionRequest, responses(
    (status = 200, description = "`{\"state\": ...}`"), (status = 400, body = ApiError), (status = 401), (status = 404, body = ApiError),
    (status = 409, body = ApiError, description = "refused in the session's state, with the reason")))]
pub(super) async fn session_action(
    AxumState(g): AxumState<Arc<Gateway>>,
    UrlPath(id): UrlPath<String>,
    body: Result<Json<ActionRequest>, JsonRejection>,
) -> Response {
    let Json(body) = match body {
        Ok(b) => b,
        Err(e) => return bad_json(e),
    };
    let call = g
        .sessions
        .lock()
        .expect("not poisoned")
        .get(&id)
        .map(|e| e.call.clone());
    let Some(call) = call else {
        return error(StatusCode::NOT_FOUND, format!("no session `{id}`"));
    };
    let commands = g
        .calls
        .lock()
        .expect("not poisoned")
        .get(&call)
        .map(|c| c.commands.clone());
    let Some(commands) = commands else {
        return error(StatusCode::CONFLICT, "the call has ended");
    };
    let (reply, answer) = oneshot::channel();
    if commands
        .send(CallCommand::Action {
            action: body.action,
            reply,
        })
        .is_err()
    {
        return error(StatusCode::CONFLICT, "the call has ended");
    }
    match answer.await {
        Ok(Ok(())) => {
            let state = g
                .sessions
                .lock()
                .expect("not poisoned")
                .get(&id)
                .map(|e| e.state);
            Json(json!({ "state": state })).into_response()
        }
        Ok(Err(refused)) => error(StatusCode::CONFLICT, refused.to_string()),
        Err(_) => error(StatusCode::CONFLICT, "the call has ended"),
    }
}
