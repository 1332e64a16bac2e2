//! `tonegate serve`: calls on UDP, the telephony and agent APIs on HTTP, connections delivered.
//!
//! ```text
//!  telephony side (SBC, PBX)        agent side (LLM agent)              customer's endpoints
//!  POST /v1/calls (SDP offer) ─┐    GET  /v1/functions                  start (sync, timeout)
//!  DELETE /v1/calls/{id}      ─┤    GET  /v1/calls/by-sip-call-id/{sip_call_id}
//!  ng over UDP (Kamailio,     ─┤    POST /v1/calls/{id}/sessions ─┐      success / failure
//!   OpenSIPS: offer, answer,   │    GET  /v1/sessions/{id}[/events]│        (delivered by
//!   delete, block DTMF, ...)   ▼                                   │         the outbox)
//!                         call task ◄── POST /v1/sessions/{id}/actions
//!   UDP socket(s) ──► (Call: media -> pci -> control) ──► agent events (SSE), connections,
//!   (an ng call: a caller leg                               tonegate_pci::pay (processor)
//!    and an agent leg, latched)
//! ```
//!
//! One tokio task per call (`call_task`) owns its [`tonegate_call::Call`] and its UDP sockets
//! (one, or two for a call anchored over ng); the HTTP handlers (`telephony`, `agent`) and the
//! ng listener (`ng`) talk to it through a channel. Agent events go to a
//! per-session broadcast (with history, so a stream opened late sees everything; `gateway`).
//! Success and failure connections go to a [`Deliver`]er: the durable outbox
//! ([`crate::outbox`], SQLite under `data_dir`) unless a test injects another.
//!
//! | module | concept |
//! |---|---|
//! | `config` | [`ServeConfig`]: the file, the environment, the defaults |
//! | `gateway` | [`Gateway`]: shared state, start, graceful stop ([`Running`]), RTP ports |
//! | `call_task` | the task of one call: sockets, commands, outputs carried out, metrics |
//! | `leg` | one leg of a call: its socket, latching, where tonegate sends to it, its counters |
//! | `telephony` | `POST /v1/calls`, `DELETE /v1/calls/{id}` |
//! | `ng` | the ng listener (rtpengine's protocol, for Kamailio and OpenSIPS): anchored calls |
//! | `agent` | functions, sessions, actions, Server-Sent Events |
//! | `http` | the router, bearer tokens, health, readiness, metrics |
//! | `openapi` | [`ApiDoc`], the OpenAPI document |
//! | `error` | [`ApiError`]: a status and a message |
//! | `delivery` | [`Deliver`] and the outbox as deliverer |

mod agent;
mod call_task;
mod config;
mod delivery;
mod error;
mod gateway;
mod http;
mod leg;
mod ng;
mod openapi;
mod telephony;

pub use agent::{ActionRequest, CallBySipCallId, InvokeRequest, SessionCreated};
pub use config::{
    resolve_secret_reference, MaskReplacement, PortRange, SecretError, ServeConfig,
    EXAMPLE_FUNCTION,
};
pub use delivery::Deliver;
pub use error::ApiError;
pub use gateway::{Gateway, Running};
pub use openapi::ApiDoc;
pub use telephony::{CallCreated, CreateCall};
