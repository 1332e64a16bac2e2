//! Where a session's success and failure connections go: the durable outbox.

use std::sync::Arc;

use serde_json::Value;
use tonegate_control::config::Connection;
use tonegate_control::session::ConnectionKind;

use crate::outbox::{DeliveryKind, NewDelivery, Outbox};

/// Where success and failure connections go (the durable outbox in production).
pub trait Deliver: Send + Sync {
    /// Hands over one connection body; exactly one call per session and kind.
    fn deliver(&self, session: &str, kind: ConnectionKind, connection: &Connection, body: Value);
}

/// The durable outbox as the gateway's deliverer: a delivery is committed to the database
/// before `deliver` returns, then sent by the outbox's worker.
pub(super) struct OutboxDelivery(pub(super) Arc<Outbox>);

impl Deliver for OutboxDelivery {
    fn deliver(&self, session: &str, kind: ConnectionKind, connection: &Connection, body: Value) {
        let Ok(kind) = DeliveryKind::try_from(kind) else {
            return;
        };
        let delivery = NewDelivery {
            session_reference: session.to_owned(),
            kind,
            connection: connection.clone(),
            body,
        };
        if let Err(e) = self.0.enqueue_blocking(delivery) {
            tracing::error!(%session, error = %e, "cannot store a connection delivery");
        }
    }
}
