//! The payment session: a sans-IO state machine.
//!
//! ```text
//!  starting ──start ok──► awaiting_amount_confirmation ──confirm──► collecting ◄──resume── paused
//!     │                          │ decline/cancel                    │   │ ▲ pause──────────┘
//!     │ start failed /           ▼                                   │   │ └──different card──┐
//!     │ invalid response     cancelled ◄──cancel (any state before processing)──────────┐      │
//!     ▼                                                               card ready         │      │
//!   failed ◄── retries exhausted / timeout / hang-up / template error ──┤                │      │
//!     ▲                                                                 ▼                │      │
//!     └──── declined / processor error ◄── processing ◄──confirm── awaiting_card_confirmation
//!                                             │
//!                                             └── approved ──► succeeded
//! ```
//!
//! Inputs ([`Input`]): the start connection's result, the PCI collector's masked events,
//! agent actions, the payment outcome, the caller hanging up. Outputs ([`Output`]): events for
//! the agent side (messages to read with their text, state changes, field progress, the masked
//! summary, the outcome), connection requests (start, success, failure), commands for the
//! gateway to apply to the PCI collector, and the payment request. The session never sees a
//! digit: it names only `tonegate-pci`'s masked types.

use std::collections::VecDeque;
use std::sync::Arc;

use minijinja::Value as Jinja;
use serde::Serialize;
use serde_json::{json, Map, Value};
use tonegate_pci::{
    Brand, CollectEvent, CollectionError, CollectorConfig, Field, MaskedCard, PaymentOutcome,
    PaymentRequest, YearMonth,
};

use crate::config::{Function, MessageKind, SetVariable};
use crate::start::StartDetails;

/// Where a session is (stable names, part of the API: `docs/serve.md`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// Calling the start connection.
    Starting,
    /// The caller is asked to confirm the amount.
    AwaitingAmountConfirmation,
    /// Fields are being collected.
    Collecting,
    /// Collection is paused while the caller talks to the agent.
    Paused,
    /// The masked summary was read; the caller is asked to confirm.
    AwaitingCardConfirmation,
    /// The processor is charging or tokenizing.
    Processing,
    /// Charged or tokenized.
    Succeeded,
    /// Ended without a payment.
    Failed,
    /// Cancelled by the caller or the agent, without a charge.
    Cancelled,
}

impl State {
    /// The stable name (`awaiting_amount_confirmation`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            State::Starting => "starting",
            State::AwaitingAmountConfirmation => "awaiting_amount_confirmation",
            State::Collecting => "collecting",
            State::Paused => "paused",
            State::AwaitingCardConfirmation => "awaiting_card_confirmation",
            State::Processing => "processing",
            State::Succeeded => "succeeded",
            State::Failed => "failed",
            State::Cancelled => "cancelled",
        }
    }

    /// Whether the session has ended.
    pub fn is_terminal(self) -> bool {
        matches!(self, State::Succeeded | State::Failed | State::Cancelled)
    }
}

/// `failed_reason` on the failure connection (stable names, part of the API: `docs/config.md`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FailedReason {
    /// The processor declined the card.
    PaymentDeclined,
    /// The processor failed or did not answer in time.
    ProcessorError,
    /// A field failed more often than the per-field retry limit allows.
    CollectionRetriesExhausted,
    /// The caller entered nothing, attempt after attempt.
    CollectionTimeout,
    /// The caller cancelled (through the agent, by declining, or with `*` when so configured).
    CallerCancelled,
    /// The caller hung up before the payment was sent.
    CallerHungUp,
    /// The start connection was unreachable, timed out, or answered with a non-2xx status.
    StartConnectionFailed,
    /// The start connection's body was not a valid start response.
    InvalidStartResponse,
    /// A template failed to render, or tonegate itself failed.
    InternalError,
}

impl FailedReason {
    /// The stable name (`payment-declined`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            FailedReason::PaymentDeclined => "payment-declined",
            FailedReason::ProcessorError => "processor-error",
            FailedReason::CollectionRetriesExhausted => "collection-retries-exhausted",
            FailedReason::CollectionTimeout => "collection-timeout",
            FailedReason::CallerCancelled => "caller-cancelled",
            FailedReason::CallerHungUp => "caller-hung-up",
            FailedReason::StartConnectionFailed => "start-connection-failed",
            FailedReason::InvalidStartResponse => "invalid-start-response",
            FailedReason::InternalError => "internal-error",
        }
    }
}

impl From<tonegate_pci::FailedReason> for FailedReason {
    fn from(reason: tonegate_pci::FailedReason) -> Self {
        match reason {
            tonegate_pci::FailedReason::PaymentDeclined => FailedReason::PaymentDeclined,
            tonegate_pci::FailedReason::ProcessorError => FailedReason::ProcessorError,
            tonegate_pci::FailedReason::CollectionRetriesExhausted => {
                FailedReason::CollectionRetriesExhausted
            }
            tonegate_pci::FailedReason::CollectionTimeout => FailedReason::CollectionTimeout,
            tonegate_pci::FailedReason::CallerCancelled => FailedReason::CallerCancelled,
        }
    }
}

/// What the agent (through the gateway's API) can ask of a session.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AgentAction {
    /// The caller agreed to the amount.
    ConfirmAmount,
    /// The caller confirmed the masked card: pay.
    ConfirmCard,
    /// The caller declined the amount or the card: the session is cancelled.
    Decline,
    /// Cancel the payment (any time before processing).
    Cancel,
    /// The caller asked a question: stop the collection timers.
    Pause,
    /// Continue the same field.
    Resume,
    /// Start again from the card number.
    DifferentCard,
}

/// How a start connection call failed before giving a body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StartFailure {
    /// Connection refused, DNS failure, TLS failure, ...
    Unreachable(String),
    /// No answer within the connection's timeout.
    Timeout,
    /// A status outside 2xx.
    Status(u16),
    /// A 2xx answer whose body is not JSON.
    NotJson(String),
}

/// Everything a session reacts to.
#[derive(Clone, Debug)]
pub enum Input {
    /// The start connection answered (its JSON body) or failed.
    StartResult(Result<Value, StartFailure>),
    /// A masked event of the PCI collector.
    Collect(CollectEvent),
    /// An agent action.
    Agent(AgentAction),
    /// The processor's masked outcome.
    Payment(PaymentOutcome),
    /// The caller hung up.
    HangUp,
    /// The gateway is shutting down and ends the call: as a hang-up, but reported as
    /// `internal-error`, since the caller did not hang up.
    Shutdown,
}

/// Which connection a request is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ConnectionKind {
    /// Payment session start.
    Start,
    /// Payment session success.
    Success,
    /// Payment session failure.
    Failure,
}

/// What the gateway must do to the PCI collector.
#[derive(Clone, Debug, PartialEq)]
pub enum CollectorCommand {
    /// Create and start the collector with this configuration.
    Start(CollectorConfig),
    /// Stop its timers.
    Pause,
    /// Continue.
    Resume,
    /// Forget the card and start again from the first field.
    DifferentCard,
    /// End it (cancel, hang-up), forgetting everything.
    Cancel,
}

/// An event for the agent side: masked, safe to stream and log.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum AgentEvent {
    /// Read this message to the caller.
    Say {
        /// Which message.
        message: MessageKind,
        /// Its rendered text.
        text: String,
    },
    /// The session moved.
    StateChanged {
        /// From.
        from: State,
        /// To.
        to: State,
    },
    /// A field is being asked for.
    FieldStarted {
        /// The field.
        field: Field,
        /// 1 for the first attempt.
        attempt: u32,
    },
    /// The caller is typing: how many digits so far (never which).
    FieldProgress {
        /// The field.
        field: Field,
        /// Digits entered.
        digits: usize,
    },
    /// A field validated.
    FieldCompleted {
        /// The field.
        field: Field,
        /// The brand, for the card number.
        brand: Option<Brand>,
    },
    /// An attempt failed.
    FieldRejected {
        /// The field.
        field: Field,
        /// Why.
        error: CollectionError,
        /// The attempt that failed.
        attempt: u32,
        /// Attempts left.
        retries_left: u32,
    },
    /// The masked card to read back.
    MaskedSummary {
        /// Brand and last four.
        card: MaskedCard,
    },
    /// The session ended.
    Outcome {
        /// `succeeded`, `failed` or `cancelled`.
        state: State,
        /// Why it failed or was cancelled.
        failed_reason: Option<FailedReason>,
        /// The processor's charge id.
        transaction_id: Option<String>,
        /// The processor's token id.
        token_id: Option<String>,
        /// The masked card, when one was collected.
        card: Option<MaskedCard>,
    },
}

/// Everything a session asks of the world.
#[derive(Clone, Debug, PartialEq)]
pub enum Output {
    /// For the agent side.
    Agent(AgentEvent),
    /// Call a connection with this JSON body. Start: synchronous, its result comes back as
    /// [`Input::StartResult`]. Success and failure: exactly once per session, delivered by the
    /// gateway's durable outbox.
    Connection {
        /// Which connection.
        kind: ConnectionKind,
        /// The JSON body.
        body: Value,
    },
    /// Apply this to the PCI collector.
    Collector(CollectorCommand),
    /// Take the collector's card and `tonegate_pci::pay` it with this request; the outcome
    /// comes back as [`Input::Payment`].
    Pay(PaymentRequest),
}

/// An agent action refused in the session's state; the session is unchanged.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("cannot {action} in state {state}: {reason}")]
pub struct ActionRefused {
    /// The action, by name.
    pub action: &'static str,
    /// The state it was refused in.
    pub state: &'static str,
    /// Why, for a person.
    pub reason: &'static str,
}

/// The inputs a session starts from.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Invocation {
    /// Input parameters, validated against the input schema.
    pub params: Map<String, Value>,
    /// Reference variables.
    pub refs: Map<String, Value>,
    /// Input variables.
    pub vars: Map<String, Value>,
}

/// One payment session. See the module docs.
pub struct Session {
    function: Arc<Function>,
    reference: String,
    invocation: Invocation,
    today: YearMonth,
    state: State,
    variables: Map<String, Value>,
    start: Option<StartDetails>,
    brand: Option<Brand>,
    card: Option<MaskedCard>,
    hung_up: bool,
    outputs: VecDeque<Output>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("function", &self.function.name)
            .field("reference", &self.reference)
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

impl Session {
    /// Starts a session of `function` called with `invocation`, referenced as `reference`;
    /// `today` is the month expiry dates are checked against. The disclaimer and the start
    /// connection request are the first outputs (or, if a Set variable fails to render, the
    /// failure).
    pub fn new(
        function: Arc<Function>,
        reference: String,
        invocation: Invocation,
        today: YearMonth,
    ) -> Session {
        let mut session = Session {
            function,
            reference,
            invocation,
            today,
            state: State::Starting,
            variables: Map::new(),
            start: None,
            brand: None,
            card: None,
            hung_up: false,
            outputs: VecDeque::new(),
        };
        match session.render_variables() {
            Ok(variables) => {
                session.variables = variables;
                session.say(MessageKind::Disclaimer);
                if !session.state.is_terminal() {
                    session.outputs.push_back(Output::Connection {
                        kind: ConnectionKind::Start,
                        body: Value::Object(session.variables.clone()),
                    });
                }
            }
            Err(e) => {
                tracing::error!(
                    function = %session.function.name,
                    session = %session.reference,
                    error = %e,
                    "a Set variable failed to render"
                );
                session.fail(FailedReason::InternalError);
            }
        }
        session
    }

    /// The session's state.
    pub fn state(&self) -> State {
        self.state
    }

    /// The session's reference (`session_reference_id`).
    pub fn reference(&self) -> &str {
        &self.reference
    }

    /// The rendered Set variables.
    pub fn variables(&self) -> &Map<String, Value> {
        &self.variables
    }

    /// The validated start response, once there is one.
    pub fn start_details(&self) -> Option<&StartDetails> {
        self.start.as_ref()
    }

    /// The masked card, once collected.
    pub fn card(&self) -> Option<&MaskedCard> {
        self.card.as_ref()
    }

    /// The next output, if any.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// Handles an input. Only agent actions can be refused; a refused action changes nothing.
    pub fn handle_input(&mut self, input: Input) -> Result<(), ActionRefused> {
        match input {
            Input::StartResult(result) => self.on_start(result),
            Input::Collect(event) => self.on_collect(event),
            Input::Agent(action) => return self.on_agent(action),
            Input::Payment(outcome) => self.on_payment(outcome),
            Input::HangUp => self.on_hang_up(FailedReason::CallerHungUp),
            Input::Shutdown => self.on_hang_up(FailedReason::InternalError),
        }
        Ok(())
    }

    fn on_start(&mut self, result: Result<Value, StartFailure>) {
        if self.state != State::Starting {
            return;
        }
        let body = match result {
            Ok(body) => body,
            Err(StartFailure::NotJson(why)) => {
                tracing::warn!(session = %self.reference, %why, "start connection answered a body that is not JSON");
                self.fail(FailedReason::InvalidStartResponse);
                return;
            }
            Err(failure) => {
                tracing::warn!(session = %self.reference, ?failure, "start connection failed");
                self.fail(FailedReason::StartConnectionFailed);
                return;
            }
        };
        match StartDetails::from_response(&body) {
            Ok(details) => {
                self.start = Some(details);
                self.set_state(State::AwaitingAmountConfirmation);
                self.say(MessageKind::BeforeStartingSession);
            }
            Err(e) => {
                tracing::warn!(session = %self.reference, error = %e, "start connection answered an invalid body");
                self.fail(FailedReason::InvalidStartResponse);
            }
        }
    }

    fn on_collect(&mut self, event: CollectEvent) {
        if !matches!(self.state, State::Collecting | State::Paused) {
            return;
        }
        match event {
            CollectEvent::FieldStarted { field, attempt } => {
                self.agent(AgentEvent::FieldStarted { field, attempt });
                self.say(prompt_for(field));
            }
            CollectEvent::KeyAccepted { field, digits } => {
                self.agent(AgentEvent::FieldProgress { field, digits });
            }
            CollectEvent::FieldCleared { field } => {
                self.agent(AgentEvent::FieldProgress { field, digits: 0 });
            }
            CollectEvent::FieldCompleted { field, brand } => {
                if field == Field::CardNumber {
                    self.brand = brand;
                }
                self.agent(AgentEvent::FieldCompleted { field, brand });
            }
            CollectEvent::FieldRejected {
                field,
                error,
                attempt,
                retries_left,
            } => {
                self.agent(AgentEvent::FieldRejected {
                    field,
                    error,
                    attempt,
                    retries_left,
                });
                if retries_left > 0 {
                    let extra = context_pairs([
                        ("error", Jinja::from(error.as_str())),
                        ("field", Jinja::from(field.as_str())),
                        ("attempt", Jinja::from(attempt)),
                        ("retries_left", Jinja::from(retries_left)),
                    ]);
                    self.say_with(MessageKind::CollectionError, extra);
                }
            }
            CollectEvent::CardReady { card } => {
                self.card = Some(card.clone());
                self.set_state(State::AwaitingCardConfirmation);
                self.agent(AgentEvent::MaskedSummary { card });
                self.say(MessageKind::ConfirmationMessage);
            }
            CollectEvent::Ended { reason } => {
                let reason = FailedReason::from(reason);
                if reason == FailedReason::CallerCancelled {
                    self.cancel_now(false);
                } else {
                    self.fail(reason);
                }
            }
        }
    }

    fn on_agent(&mut self, action: AgentAction) -> Result<(), ActionRefused> {
        let refuse = |reason| ActionRefused {
            action: action_name(action),
            state: self.state.as_str(),
            reason,
        };
        if self.state.is_terminal() {
            return Err(refuse("the session has ended"));
        }
        match action {
            AgentAction::ConfirmAmount => {
                if self.state != State::AwaitingAmountConfirmation {
                    return Err(refuse("the amount is not awaiting confirmation"));
                }
                let config = self.collector_config();
                self.set_state(State::Collecting);
                self.outputs
                    .push_back(Output::Collector(CollectorCommand::Start(config)));
            }
            AgentAction::ConfirmCard => {
                if self.state != State::AwaitingCardConfirmation {
                    return Err(refuse("no card is awaiting confirmation"));
                }
                let start = self
                    .start
                    .as_ref()
                    .expect("a card implies a start response");
                let request = PaymentRequest {
                    session_reference: self.reference.clone(),
                    amount: start.amount,
                    currency: start.currency,
                    description: start.description.clone(),
                    processor_parameters: start.passthrough.clone(),
                    token_type: start.token_type,
                };
                self.set_state(State::Processing);
                self.outputs.push_back(Output::Pay(request));
            }
            AgentAction::Decline => {
                if !matches!(
                    self.state,
                    State::AwaitingAmountConfirmation | State::AwaitingCardConfirmation
                ) {
                    return Err(refuse("there is nothing to decline"));
                }
                self.cancel_now(true);
            }
            AgentAction::Cancel => {
                if self.state == State::Processing {
                    return Err(refuse(
                        "the payment is with the processor and may already be charged; wait for its outcome",
                    ));
                }
                self.cancel_now(true);
            }
            AgentAction::Pause => {
                if self.state != State::Collecting {
                    return Err(refuse("only collection can be paused"));
                }
                self.set_state(State::Paused);
                self.outputs
                    .push_back(Output::Collector(CollectorCommand::Pause));
            }
            AgentAction::Resume => {
                if self.state != State::Paused {
                    return Err(refuse("the session is not paused"));
                }
                self.set_state(State::Collecting);
                self.outputs
                    .push_back(Output::Collector(CollectorCommand::Resume));
            }
            AgentAction::DifferentCard => {
                if !matches!(
                    self.state,
                    State::Collecting | State::Paused | State::AwaitingCardConfirmation
                ) {
                    return Err(refuse("no card is being collected"));
                }
                if self.state == State::Paused {
                    self.outputs
                        .push_back(Output::Collector(CollectorCommand::Resume));
                }
                self.card = None;
                self.brand = None;
                self.set_state(State::Collecting);
                self.outputs
                    .push_back(Output::Collector(CollectorCommand::DifferentCard));
            }
        }
        Ok(())
    }

    fn on_payment(&mut self, outcome: PaymentOutcome) {
        if self.state != State::Processing {
            return;
        }
        match outcome {
            PaymentOutcome::Succeeded {
                card,
                transaction_id,
                token_id,
            } => {
                self.card = Some(card.clone());
                self.set_state(State::Succeeded);
                if !self.hung_up {
                    self.say(MessageKind::PaymentSuccess);
                }
                let mut body = self.connection_base();
                body.insert("transaction_id".into(), json!(transaction_id));
                body.insert("token_id".into(), json!(token_id));
                body.insert("card".into(), json!(card));
                self.connection(ConnectionKind::Success, body);
                self.agent(AgentEvent::Outcome {
                    state: State::Succeeded,
                    failed_reason: None,
                    transaction_id,
                    token_id,
                    card: Some(card),
                });
            }
            PaymentOutcome::Failed { card, reason, .. } => {
                self.card = Some(card);
                self.fail(reason.into());
            }
        }
    }

    /// The call ended under the session: `reason` unless the payment is already with the
    /// processor.
    fn on_hang_up(&mut self, reason: FailedReason) {
        if self.state.is_terminal() {
            return;
        }
        self.hung_up = true;
        if self.state == State::Processing {
            // The processor may charge: its outcome decides, and is reported as usual.
            return;
        }
        self.end_collector();
        self.fail(reason);
    }

    fn collector_config(&self) -> CollectorConfig {
        let start = self
            .start
            .as_ref()
            .expect("confirmed after a start response");
        let limits = &self.function.limits;
        let mut config = CollectorConfig::new(self.today);
        config.allowed_payment_types = start.allowed_payment_types.clone();
        config.security_code_required = start.security_code_required;
        config.postal_code_required = start.postal_code_required;
        config.min_postal_code_length = start.min_postal_code_length;
        config.valid_card_types = start.valid_card_types.clone();
        config.retry_limit = limits.per_field_retry_limit;
        config.first_key_timeout =
            tonegate_media::Millis(limits.first_key_timeout_seconds * 1000.0);
        config.inter_digit_timeout =
            tonegate_media::Millis(limits.inter_digit_timeout_seconds * 1000.0);
        config.star_key = limits.star_key;
        config
    }

    fn end_collector(&mut self) {
        if matches!(
            self.state,
            State::Collecting | State::Paused | State::AwaitingCardConfirmation
        ) {
            self.outputs
                .push_back(Output::Collector(CollectorCommand::Cancel));
        }
    }

    fn cancel_now(&mut self, tell_collector: bool) {
        if tell_collector {
            self.end_collector();
        }
        self.set_state(State::Cancelled);
        self.failure_connection(FailedReason::CallerCancelled);
        self.agent(AgentEvent::Outcome {
            state: State::Cancelled,
            failed_reason: Some(FailedReason::CallerCancelled),
            transaction_id: None,
            token_id: None,
            card: self.card.clone(),
        });
    }

    fn fail(&mut self, reason: FailedReason) {
        if self.state.is_terminal() {
            return;
        }
        self.set_state(State::Failed);
        if !self.hung_up {
            let extra = context_pairs([("failed_reason", Jinja::from(reason.as_str()))]);
            self.say_with(MessageKind::PaymentError, extra);
        }
        self.failure_connection(reason);
        self.agent(AgentEvent::Outcome {
            state: State::Failed,
            failed_reason: Some(reason),
            transaction_id: None,
            token_id: None,
            card: self.card.clone(),
        });
    }

    fn connection_base(&self) -> Map<String, Value> {
        let mut body = self.variables.clone();
        body.insert("session_reference_id".into(), json!(self.reference));
        let passthrough = self
            .start
            .as_ref()
            .map(|s| Value::Object(s.passthrough.clone()))
            .unwrap_or_else(|| json!({}));
        body.insert("processor_parameters".into(), passthrough);
        body
    }

    fn failure_connection(&mut self, reason: FailedReason) {
        let mut body = self.connection_base();
        body.insert("failed_reason".into(), json!(reason.as_str()));
        self.connection(ConnectionKind::Failure, body);
    }

    fn connection(&mut self, kind: ConnectionKind, body: Map<String, Value>) {
        let configured = match kind {
            ConnectionKind::Start => true,
            ConnectionKind::Success => self.function.connections.success.is_some(),
            ConnectionKind::Failure => self.function.connections.failure.is_some(),
        };
        if configured {
            self.outputs.push_back(Output::Connection {
                kind,
                body: Value::Object(body),
            });
        }
    }

    fn set_state(&mut self, to: State) {
        let from = self.state;
        if from != to {
            self.state = to;
            tracing::info!(session = %self.reference, from = from.as_str(), to = to.as_str(), "session state changed");
            self.agent(AgentEvent::StateChanged { from, to });
        }
    }

    fn agent(&mut self, event: AgentEvent) {
        self.outputs.push_back(Output::Agent(event));
    }

    fn say(&mut self, message: MessageKind) {
        self.say_with(message, Vec::new());
    }

    /// Renders and says a message. A rendering error fails the session with `internal-error`
    /// (or, for the failure message itself, falls back to its default text).
    fn say_with(&mut self, message: MessageKind, extra: Vec<(&'static str, Jinja)>) {
        match self.render(message, &extra) {
            Ok(text) => self.agent(AgentEvent::Say { message, text }),
            Err(e) => {
                tracing::error!(
                    function = %self.function.name,
                    session = %self.reference,
                    message = message.as_str(),
                    error = %e,
                    "a message template failed to render"
                );
                if message == MessageKind::PaymentError {
                    let env = crate::template::environment();
                    let text = env
                        .render_str(message.default_template(), self.context(&extra))
                        .unwrap_or_else(|_| "The payment could not be completed.".to_owned());
                    self.agent(AgentEvent::Say { message, text });
                } else {
                    self.end_collector();
                    self.fail(FailedReason::InternalError);
                }
            }
        }
    }

    fn render(
        &self,
        message: MessageKind,
        extra: &[(&'static str, Jinja)],
    ) -> Result<String, minijinja::Error> {
        let template = self
            .function
            .env
            .get_template(&format!("messages.{}", message.as_str()))?;
        template.render(self.context(extra))
    }

    fn context(&self, extra: &[(&'static str, Jinja)]) -> Jinja {
        let start = self.start.as_ref();
        let mut pairs: Vec<(&'static str, Jinja)> = vec![
            ("params", Jinja::from_serialize(&self.invocation.params)),
            ("refs", Jinja::from_serialize(&self.invocation.refs)),
            ("vars", Jinja::from_serialize(&self.invocation.vars)),
            ("variables", Jinja::from_serialize(&self.variables)),
            ("session_reference_id", Jinja::from(self.reference.as_str())),
            ("amount", Jinja::from(start.map(|s| s.amount.0))),
            (
                "currency",
                Jinja::from(start.map(|s| s.currency.as_str().to_owned())),
            ),
            (
                "description",
                Jinja::from(start.and_then(|s| s.description.clone())),
            ),
            (
                "processor_parameters",
                Jinja::from_serialize(start.map(|s| &s.passthrough)),
            ),
            ("start", Jinja::from_serialize(start.map(|s| &s.raw))),
            ("card", Jinja::from_serialize(&self.card)),
            ("card_brand", Jinja::from(self.brand.map(Brand::as_str))),
            (
                "card_brand_name",
                Jinja::from(
                    self.card
                        .as_ref()
                        .and_then(|c| c.brand)
                        .map_or("", spoken_brand),
                ),
            ),
        ];
        pairs.extend(extra.iter().cloned());
        pairs.into_iter().collect::<Jinja>()
    }

    fn render_variables(&self) -> Result<Map<String, Value>, minijinja::Error> {
        let context = minijinja::context! {
            params => Jinja::from_serialize(&self.invocation.params),
            refs => Jinja::from_serialize(&self.invocation.refs),
            vars => Jinja::from_serialize(&self.invocation.vars),
        };
        let mut out = Map::new();
        for (name, variable) in &self.function.set_variables {
            let value = match variable {
                SetVariable::Static(value) => value.clone(),
                SetVariable::Template(_) => {
                    let template = self
                        .function
                        .env
                        .get_template(&format!("set_variables.{name}"))?;
                    Value::String(template.render(&context)?)
                }
            };
            out.insert(name.clone(), value);
        }
        Ok(out)
    }
}

fn context_pairs<const N: usize>(pairs: [(&'static str, Jinja); N]) -> Vec<(&'static str, Jinja)> {
    pairs.into_iter().collect()
}

/// A brand as a person says it.
fn spoken_brand(brand: Brand) -> &'static str {
    match brand {
        Brand::Visa => "Visa",
        Brand::Mastercard => "Mastercard",
        Brand::Amex => "American Express",
        Brand::Discover => "Discover",
        Brand::Diners => "Diners Club",
        Brand::Jcb => "JCB",
        Brand::Unionpay => "UnionPay",
        Brand::Maestro => "Maestro",
    }
}

fn prompt_for(field: Field) -> MessageKind {
    match field {
        Field::CardNumber => MessageKind::CreditCard,
        Field::ExpirationDate => MessageKind::ExpirationDate,
        Field::SecurityCode => MessageKind::SecurityCode,
        Field::PostalCode => MessageKind::PostalCode,
        Field::BankRoutingNumber => MessageKind::BankRoutingNumber,
        Field::BankAccountNumber => MessageKind::BankAccountNumber,
    }
}

fn action_name(action: AgentAction) -> &'static str {
    match action {
        AgentAction::ConfirmAmount => "confirm_amount",
        AgentAction::ConfirmCard => "confirm_card",
        AgentAction::Decline => "decline",
        AgentAction::Cancel => "cancel",
        AgentAction::Pause => "pause",
        AgentAction::Resume => "resume",
        AgentAction::DifferentCard => "different_card",
    }
}
