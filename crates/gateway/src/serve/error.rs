//! API errors: a status and a message a person can act on.

use axum::extract::rejection::JsonRejection;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;

/// An error: what is wrong, for a person.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ApiError {
    /// The message.
    pub error: String,
}

/// An API error: a status and a message a person can act on.
pub(super) fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (
        status,
        Json(ApiError {
            error: message.into(),
        }),
    )
        .into_response()
}

/// A body that is not the JSON expected: 400 with serde's words (which say what and where),
/// 413 when too large, 415 without a JSON content type.
pub(super) fn bad_json(rejection: JsonRejection) -> Response {
    let status = match rejection.status() {
        StatusCode::UNPROCESSABLE_ENTITY => StatusCode::BAD_REQUEST,
        other => other,
    };
    error(status, rejection.body_text())
}
