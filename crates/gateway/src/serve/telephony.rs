//! The telephony side's API: media legs created from an SDP offer (or simple JSON) and hung
//! up.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path as UrlPath, State as AxumState};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tonegate_call::{Call, CallConfig, MaskingConfig, MediaMode};

use super::call_task::{run_call, CallCommand, CallMedia};
use super::error::{bad_json, error, ApiError};
use super::gateway::{bind_rtp, CallHandle, Gateway};
use super::leg::Leg;
use crate::sdp::Offer;

/// `POST /v1/calls`: a media leg.
#[derive(Debug, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateCall {
    /// An SDP offer (PCMU or PCMA, telephone-event); the answer carries the gateway's port.
    #[serde(default)]
    pub sdp: Option<String>,
    /// Simple mode: the telephone-event payload type (default 101) when there is no SDP.
    #[serde(default)]
    pub event_payload_type: Option<u8>,
    /// Simple mode: the audio codec, `PCMU` (default) or `PCMA`.
    #[serde(default)]
    pub codec: Option<String>,
    /// Simple mode: the audio payload type (default 0 for PCMU, 8 for PCMA).
    #[serde(default)]
    pub audio_payload_type: Option<u8>,
    /// `fork` (default: receive a copy, forward nothing) or `relay`.
    #[serde(default)]
    pub mode: Option<String>,
    /// Relay mode: where to forward the caller's media (`ip:port`).
    #[serde(default)]
    #[schema(value_type = Option<String>, example = "127.0.0.1:40000")]
    pub relay_to: Option<SocketAddr>,
    /// Relay mode: mask key presses for the whole call, not only during payment sessions
    /// (default: the gateway's `mask_whole_call`).
    #[serde(default)]
    pub mask_whole_call: Option<bool>,
}

/// Creates a media leg from an SDP offer (or simple JSON) and answers with the gateway's RTP
/// address.
#[utoipa::path(post, path = "/v1/calls", request_body = CreateCall, responses(
    (status = 201, body = CallCreated), (status = 400, body = ApiError), (status = 401),
    (status = 503, body = ApiError, description = "shutting down, or no RTP port")))]
pub(super) async fn create_call(
    AxumState(g): AxumState<Arc<Gateway>>,
    body: Result<Json<CreateCall>, JsonRejection>,
) -> Response {
    let Json(body) = match body {
        Ok(b) => b,
        Err(e) => return bad_json(e),
    };
    if let Some(refused) = g.refuse_if_draining() {
        return refused;
    }
    let mut config = CallConfig {
        no_media_timeout: Duration::from_secs(g.config.no_media_timeout_seconds),
        inband: g.inband.clone(),
        masking: MaskingConfig {
            whole_call: body.mask_whole_call.unwrap_or(g.config.mask_whole_call),
            hold_over: Duration::from_millis(g.config.mask_hold_over_ms),
            replacement: g.config.mask_replacement.into(),
        },
        ..CallConfig::default()
    };
    let offer = match &body.sdp {
        Some(sdp) => match Offer::parse(sdp) {
            Ok(offer) => {
                if !offer.telephone_event.is_empty() {
                    config.event_payload_types = offer.telephone_event.clone();
                }
                if offer.codec.1 == "PCMA" {
                    config.audio.pcma_payload_types = vec![offer.codec.0];
                    config.audio.pcmu_payload_types = Vec::new();
                } else {
                    config.audio.pcmu_payload_types = vec![offer.codec.0];
                    config.audio.pcma_payload_types = Vec::new();
                }
                config.red_payload_types = offer.red.clone();
                Some(offer)
            }
            Err(e) => return error(StatusCode::BAD_REQUEST, e.to_string()),
        },
        None => {
            if let Some(pt) = body.event_payload_type {
                if pt > 127 {
                    return error(StatusCode::BAD_REQUEST, "event_payload_type must be 0-127");
                }
                config.event_payload_types = vec![pt];
            }
            let (pcmu, default_pt) = match body
                .codec
                .as_deref()
                .map(str::to_ascii_uppercase)
                .as_deref()
            {
                None | Some("PCMU") => (true, 0),
                Some("PCMA") => (false, 8),
                Some(other) => {
                    return error(
                        StatusCode::BAD_REQUEST,
                        format!("codec `{other}`: tonegate speaks PCMU and PCMA"),
                    )
                }
            };
            let pt = body.audio_payload_type.unwrap_or(default_pt);
            if pt > 127 {
                return error(StatusCode::BAD_REQUEST, "audio_payload_type must be 0-127");
            }
            if pcmu {
                config.audio.pcmu_payload_types = vec![pt];
                config.audio.pcma_payload_types = Vec::new();
            } else {
                config.audio.pcma_payload_types = vec![pt];
                config.audio.pcmu_payload_types = Vec::new();
            }
            None
        }
    };
    config.mode = match (body.mode.as_deref(), body.relay_to) {
        (None | Some("fork"), _) => MediaMode::Fork,
        (Some("relay"), Some(to)) => MediaMode::Relay(to),
        (Some("relay"), None) => {
            return error(StatusCode::BAD_REQUEST, "relay mode needs relay_to")
        }
        (Some(other), _) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("mode `{other}`: use fork or relay"),
            )
        }
    };
    let socket = match bind_rtp(&g).await {
        Ok(s) => s,
        Err(e) => return error(StatusCode::SERVICE_UNAVAILABLE, e),
    };
    let rtp = socket.local_addr().expect("bound");
    let offer_remote = offer.as_ref().and_then(|o| o.remote);
    let id = g.id("call");
    let answer = offer.map(|o| {
        o.answer(
            rtp,
            g.next_id.load(Ordering::Relaxed),
            matches!(config.mode, MediaMode::Relay(_)),
        )
    });
    let (tx, rx) = mpsc::unbounded_channel();
    g.calls.lock().expect("not poisoned").insert(
        id.clone(),
        CallHandle {
            commands: tx.clone(),
            rtp,
        },
    );
    let call = Call::new(config, Instant::now());
    g.metrics.calls.inc();
    g.metrics.active_calls.inc();
    let media = CallMedia {
        caller: Leg::new(socket, false, offer_remote),
        agent: None,
        sip_call_id: None,
        media_timeout: None,
    };
    tokio::spawn(run_call(g.clone(), id.clone(), media, call, tx, rx));
    tracing::info!(call = %id, %rtp, "call created");
    (
        StatusCode::CREATED,
        Json(CallCreated {
            call_id: id,
            rtp: rtp.to_string(),
            sdp: answer,
        }),
    )
        .into_response()
}

/// Hangs up a call.
#[utoipa::path(delete, path = "/v1/calls/{id}", params(("id" = String, Path)), responses(
    (status = 204), (status = 401), (status = 404, body = ApiError)))]
pub(super) async fn end_call(
    AxumState(g): AxumState<Arc<Gateway>>,
    UrlPath(id): UrlPath<String>,
) -> Response {
    let sent = g
        .calls
        .lock()
        .expect("not poisoned")
        .get(&id)
        .map(|c| c.commands.send(CallCommand::HangUp).is_ok());
    match sent {
        Some(true) => StatusCode::NO_CONTENT.into_response(),
        _ => error(StatusCode::NOT_FOUND, format!("no call `{id}`")),
    }
}

/// A created media leg.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CallCreated {
    /// The call's id.
    pub call_id: String,
    /// Where to send the caller's RTP.
    pub rtp: String,
    /// The SDP answer, when an offer was given.
    pub sdp: Option<String>,
}
