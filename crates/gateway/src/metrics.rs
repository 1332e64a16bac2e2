//! Prometheus metrics at `/metrics`: calls, sessions by state and outcome, key presses by
//! source, RTP packets and loss, refused sources, ng requests, outbox depth and retries.

use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// Label: a session's outcome (`succeeded`, `failed`, `cancelled`) and failed reason.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    /// `succeeded`, `failed` or `cancelled`.
    pub state: String,
    /// The `failed_reason`, empty on success.
    pub reason: String,
}

/// Label: a session state.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StateLabels {
    /// The state entered.
    pub state: String,
}

/// Label: an ng command (`ping`, `offer`, ..., `invalid` for what could not be read).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CommandLabels {
    /// The command.
    pub command: String,
}

/// Label: how a key press was heard.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SourceLabels {
    /// `rfc4733` or `inband`.
    pub source: String,
}

/// The gateway's metrics.
pub struct Metrics {
    registry: Registry,
    /// Calls created.
    pub calls: Counter,
    /// Calls up now.
    pub active_calls: Gauge,
    /// Sessions started.
    pub sessions: Counter,
    /// State transitions, by the state entered.
    pub session_states: Family<StateLabels, Counter>,
    /// Ended sessions, by outcome.
    pub session_outcomes: Family<OutcomeLabels, Counter>,
    /// Key presses heard (in and out of sessions), by source.
    pub key_presses: Family<SourceLabels, Counter>,
    /// RTP packets received.
    pub rtp_packets: Counter,
    /// Datagrams refused (not RTP, damaged payloads).
    pub rtp_refused: Counter,
    /// RTP packets missing from sequence-number ranges.
    pub rtp_lost: Counter,
    /// Relayed audio packets sent as silence because they might have held a key tone.
    pub rtp_scrubbed: Counter,
    /// RTP and RTCP from a source other than the one the leg is latched to, refused.
    pub rtp_foreign_source: Counter,
    /// Packets received on anchored calls' agent legs and relayed to the caller untouched.
    pub rtp_agent_packets: Counter,
    /// ng requests, by command.
    pub ng_commands: Family<CommandLabels, Counter>,
    /// ng requests answered with `result: error`.
    pub ng_errors: Counter,
    /// ng requests seen again (same proxy, same cookie), answered from the cache.
    pub ng_retransmissions: Counter,
    /// ng keys and flags tonegate does not know, ignored.
    pub ng_unknown_flags: Counter,
    /// Success/failure deliveries waiting (sampled at scrape).
    pub outbox_depth: Gauge,
    /// Delivery attempts beyond the first (sampled at scrape).
    pub outbox_retries: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("tonegate");
        let m = Metrics {
            calls: Counter::default(),
            active_calls: Gauge::default(),
            sessions: Counter::default(),
            session_states: Family::default(),
            session_outcomes: Family::default(),
            key_presses: Family::default(),
            rtp_packets: Counter::default(),
            rtp_refused: Counter::default(),
            rtp_lost: Counter::default(),
            rtp_scrubbed: Counter::default(),
            rtp_foreign_source: Counter::default(),
            rtp_agent_packets: Counter::default(),
            ng_commands: Family::default(),
            ng_errors: Counter::default(),
            ng_retransmissions: Counter::default(),
            ng_unknown_flags: Counter::default(),
            outbox_depth: Gauge::default(),
            outbox_retries: Gauge::default(),
            registry: Registry::default(),
        };
        registry.register("calls", "Calls created", m.calls.clone());
        registry.register("active_calls", "Calls up now", m.active_calls.clone());
        registry.register("sessions", "Payment sessions started", m.sessions.clone());
        registry.register(
            "session_states",
            "Session state transitions, by the state entered",
            m.session_states.clone(),
        );
        registry.register(
            "session_outcomes",
            "Ended sessions, by outcome and failed reason",
            m.session_outcomes.clone(),
        );
        registry.register(
            "key_presses",
            "Key presses heard, by source",
            m.key_presses.clone(),
        );
        registry.register("rtp_packets", "RTP packets received", m.rtp_packets.clone());
        registry.register(
            "rtp_refused",
            "Datagrams refused (not RTP, damaged)",
            m.rtp_refused.clone(),
        );
        registry.register(
            "rtp_lost",
            "RTP packets missing from sequence ranges",
            m.rtp_lost.clone(),
        );
        registry.register(
            "rtp_scrubbed",
            "Relayed audio packets sent as silence: they might have held a key tone",
            m.rtp_scrubbed.clone(),
        );
        registry.register(
            "rtp_foreign_source",
            "RTP and RTCP refused: from another source than the one the leg is latched to",
            m.rtp_foreign_source.clone(),
        );
        registry.register(
            "rtp_agent_packets",
            "Packets from anchored calls' agent legs, relayed to the caller untouched",
            m.rtp_agent_packets.clone(),
        );
        registry.register(
            "ng_commands",
            "ng requests, by command",
            m.ng_commands.clone(),
        );
        registry.register(
            "ng_errors",
            "ng requests answered with an error",
            m.ng_errors.clone(),
        );
        registry.register(
            "ng_retransmissions",
            "ng requests seen again, answered from the cache",
            m.ng_retransmissions.clone(),
        );
        registry.register(
            "ng_unknown_flags",
            "ng keys and flags not known to tonegate, ignored",
            m.ng_unknown_flags.clone(),
        );
        registry.register(
            "outbox_depth",
            "Connection deliveries waiting",
            m.outbox_depth.clone(),
        );
        registry.register(
            "outbox_retries",
            "Connection delivery attempts beyond the first",
            m.outbox_retries.clone(),
        );
        Metrics { registry, ..m }
    }
}

impl Metrics {
    /// The text exposition format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        encode(&mut out, &self.registry).expect("writing to a String cannot fail");
        out
    }
}
