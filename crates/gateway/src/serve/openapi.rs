//! The OpenAPI document of the HTTP API, generated from the handlers (`GET /openapi.json`).

use super::agent::{ActionRequest, CallBySipCallId, InvokeRequest, SessionCreated};
use super::error::ApiError;
use super::telephony::{CallCreated, CreateCall};

/// The tonegate HTTP API, generated from the handlers of the telephony and agent modules.
#[derive(utoipa::OpenApi)]
#[openapi(
    info(title = "tonegate", description = "DTMF gateway for secure voice payments: the telephony side (media legs) and the agent side (payment sessions). Every /v1 route needs a bearer token: a telephony token for /v1/calls and DELETE /v1/calls/{id}, an agent token for the rest."),
    paths(
        super::telephony::create_call, super::telephony::end_call, super::agent::list_functions,
        super::agent::invoke, super::agent::call_by_sip_call_id, super::agent::session_state,
        super::agent::session_events, super::agent::session_action
    ),
    components(schemas(CreateCall, CallCreated, InvokeRequest, SessionCreated, ActionRequest, CallBySipCallId, ApiError)),
    modifiers(&BearerAuth),
    security(("bearer" = []))
)]
pub struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}
