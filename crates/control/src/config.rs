//! The voice payment function's configuration: a YAML file (primary) or a TOML file.
//!
//! This crate reads no file: the caller reads it and hands over its text with
//! [`Function::from_str`] ([`Format::from_path`] picks the format from the file name, and
//! [`ConfigError::unreadable`] is the error for a file that could not be read).
//!
//! Loading checks everything that can be checked before a call: unknown keys, types, the name,
//! the input schema (a valid JSON Schema), every template (compiled), every connection URL,
//! the limits. Errors name the file, the line and column where the parser knows them (or the
//! line of the offending key), the key, and what is wrong. `docs/config.md` is the reference.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use minijinja::Environment;
use serde::Deserialize;
use serde_json::Value;
use tonegate_pci::StarKey;

use crate::template;

/// A message the agent reads to the caller.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MessageKind {
    /// Read once before collection starts.
    Disclaimer,
    /// After the start connection resolves: the amount confirmation.
    BeforeStartingSession,
    /// Prompt for the card number.
    CreditCard,
    /// Prompt for the expiry.
    ExpirationDate,
    /// Prompt for the security code.
    SecurityCode,
    /// Prompt for the postal code.
    PostalCode,
    /// Prompt for a bank routing number.
    BankRoutingNumber,
    /// Prompt for a bank account number.
    BankAccountNumber,
    /// The masked summary before the caller confirms.
    ConfirmationMessage,
    /// A field failed and the caller is asked to retry.
    CollectionError,
    /// The payment did not succeed.
    PaymentError,
    /// The payment succeeded.
    PaymentSuccess,
}

impl MessageKind {
    /// Every message, in the order of a session.
    pub const ALL: [MessageKind; 12] = [
        MessageKind::Disclaimer,
        MessageKind::BeforeStartingSession,
        MessageKind::CreditCard,
        MessageKind::ExpirationDate,
        MessageKind::SecurityCode,
        MessageKind::PostalCode,
        MessageKind::BankRoutingNumber,
        MessageKind::BankAccountNumber,
        MessageKind::ConfirmationMessage,
        MessageKind::CollectionError,
        MessageKind::PaymentError,
        MessageKind::PaymentSuccess,
    ];

    /// The key in `messages`.
    pub fn as_str(self) -> &'static str {
        match self {
            MessageKind::Disclaimer => "disclaimer",
            MessageKind::BeforeStartingSession => "before_starting_session",
            MessageKind::CreditCard => "credit_card",
            MessageKind::ExpirationDate => "expiration_date",
            MessageKind::SecurityCode => "security_code",
            MessageKind::PostalCode => "postal_code",
            MessageKind::BankRoutingNumber => "bank_routing_number",
            MessageKind::BankAccountNumber => "bank_account_number",
            MessageKind::ConfirmationMessage => "confirmation_message",
            MessageKind::CollectionError => "collection_error",
            MessageKind::PaymentError => "payment_error",
            MessageKind::PaymentSuccess => "payment_success",
        }
    }

    /// The text used when the configuration gives none.
    pub fn default_template(self) -> &'static str {
        match self {
            MessageKind::Disclaimer => {
                "For your security, you will enter your card details on your phone's keypad. \
                 They are not heard or stored by this assistant."
            }
            MessageKind::BeforeStartingSession => {
                "{% if amount == 0 %}We will securely save your card for future payments{% else %}\
                 You will be charged {{ amount | money(currency) }}{% endif %}\
                 {% if description %} for {{ description }}{% endif %}. Is that okay?"
            }
            MessageKind::CreditCard => {
                "Please enter your card number, followed by the pound key."
            }
            MessageKind::ExpirationDate => {
                "Please enter the expiration date: two digits for the month, then two for the year."
            }
            MessageKind::SecurityCode => {
                "Please enter the {{ 'four-digit security code on the front' if card_brand == 'amex' \
                 else 'three-digit security code on the back' }} of your card."
            }
            MessageKind::PostalCode => {
                "Please enter your billing postal code, followed by the pound key."
            }
            MessageKind::BankRoutingNumber => "Please enter your bank's nine-digit routing number.",
            MessageKind::BankAccountNumber => {
                "Please enter your account number, followed by the pound key."
            }
            MessageKind::ConfirmationMessage => {
                "You entered {% if card.payment_type == 'ach-debit' %}the bank account\
                 {% elif card_brand_name %}the {{ card_brand_name }} card{% else %}the card\
                 {% endif %} ending in {{ card.last4 }}. \
                 {% if amount == 0 %}Shall I save it?{% else %}Shall I charge \
                 {{ amount | money(currency) }}?{% endif %}"
            }
            MessageKind::CollectionError => {
                "{% if error == 'timeout' %}I didn't receive any keypad entry.\
                 {% elif error == 'invalid-card-type' %}That card type is not accepted.\
                 {% elif error == 'invalid-date' %}That expiration date is not valid.\
                 {% else %}That entry was not valid.{% endif %} Let's try again."
            }
            MessageKind::PaymentError => {
                "I'm sorry, the payment could not be completed{% if failed_reason == \
                 'payment-declined' %}: the card was declined{% endif %}."
            }
            MessageKind::PaymentSuccess => {
                "Thank you, your payment {% if card %}with the card ending in {{ card.last4 }} \
                 {% endif %}was successful."
            }
        }
    }
}

/// HTTP methods a connection may use.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Method {
    /// POST (default).
    #[default]
    Post,
    /// PUT.
    Put,
    /// PATCH.
    Patch,
}

/// Authentication of a connection request: `{type: bearer, token: ...}` or
/// `{type: basic, username: ..., password: ...}`.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Auth {
    /// `Authorization: Bearer <token>`.
    Bearer {
        /// The token.
        token: String,
    },
    /// HTTP basic authentication.
    Basic {
        /// User name.
        username: String,
        /// Password.
        password: String,
    },
}

impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Auth::Bearer { .. } => f.write_str("Bearer(<redacted>)"),
            Auth::Basic { username, .. } => write!(f, "Basic({username}, <redacted>)"),
        }
    }
}

/// One API connection (start, success or failure).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Connection {
    /// Where to send the request (http or https).
    pub url: String,
    /// The method (default POST).
    #[serde(default)]
    pub method: Method,
    /// Extra request headers.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Authentication.
    #[serde(default)]
    pub auth: Option<Auth>,
    /// Timeout of one attempt, in milliseconds (default 5000).
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// Further attempts after a failure. Start: default 0. Success and failure (delivered by
    /// the gateway's durable outbox): when set, at most this many retries; when not, retried
    /// until the outbox's deadline (24 h by default).
    #[serde(default)]
    pub retries: Option<u32>,
}

fn default_timeout_ms() -> u64 {
    5000
}

impl Connection {
    /// The timeout of one attempt.
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }
}

/// The three connections.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Connections {
    /// Payment session start (required): resolves amount, currency and fields.
    pub start: Connection,
    /// Receives the outcome after a successful charge or tokenization.
    #[serde(default)]
    pub success: Option<Connection>,
    /// Receives the reason after a terminal failure.
    #[serde(default)]
    pub failure: Option<Connection>,
}

/// Collection limits.
#[derive(Clone, Copy, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Retries per field before the session fails (default 3).
    #[serde(default = "default_retries")]
    pub per_field_retry_limit: u32,
    /// Seconds allowed between keypad presses (default 5).
    #[serde(default = "default_inter_digit")]
    pub inter_digit_timeout_seconds: f64,
    /// Seconds allowed before the first key of a field (default 10).
    #[serde(default = "default_first_key")]
    pub first_key_timeout_seconds: f64,
    /// What `*` does: `clear-field` (default) or `cancel-session`.
    #[serde(default)]
    pub star_key: StarKey,
}

fn default_retries() -> u32 {
    3
}
fn default_inter_digit() -> f64 {
    5.0
}
fn default_first_key() -> f64 {
    10.0
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            per_field_retry_limit: default_retries(),
            inter_digit_timeout_seconds: default_inter_digit(),
            first_key_timeout_seconds: default_first_key(),
            star_key: StarKey::default(),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFunction {
    name: String,
    purpose: String,
    #[serde(default)]
    input_schema: Option<Value>,
    #[serde(default)]
    set_variables: BTreeMap<String, Value>,
    connections: Connections,
    #[serde(default)]
    messages: BTreeMap<String, String>,
    #[serde(default)]
    limits: Limits,
}

/// A Set variable: a template rendered per session, or a static value.
#[derive(Clone, Debug, PartialEq)]
pub enum SetVariable {
    /// A Jinja2 template over `params`, `refs` and `vars`, compiled at load.
    Template(String),
    /// A value used as is.
    Static(Value),
}

/// A loaded, checked voice payment function.
pub struct Function {
    /// Unique name (lower case, digits, underscores).
    pub name: String,
    /// When the agent should call it (the tool description).
    pub purpose: String,
    /// The JSON Schema of the input parameters.
    pub input_schema: Value,
    validator: jsonschema::Validator,
    /// Set variables, by name.
    pub set_variables: BTreeMap<String, SetVariable>,
    /// The connections.
    pub connections: Connections,
    /// Collection limits.
    pub limits: Limits,
    /// Message template sources, defaults filled in.
    messages: BTreeMap<MessageKind, String>,
    /// Templates: `set_variables.NAME` and `messages.KIND`.
    pub(crate) env: Environment<'static>,
}

impl fmt::Debug for Function {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Function")
            .field("name", &self.name)
            .field("connections", &self.connections)
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

/// Why a configuration was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{}{}: {message}", origin.display(), location.map(|(l, c)| format!(":{l}:{c}")).unwrap_or_default())]
pub struct ConfigError {
    /// The file (or `<string>`).
    pub origin: PathBuf,
    /// Line and column (1-based), where known.
    pub location: Option<(usize, usize)>,
    /// What is wrong, naming the key.
    pub message: String,
}

impl ConfigError {
    /// The error for a function file at `path` that could not be read (`error` says why).
    pub fn unreadable(path: &Path, error: &std::io::Error) -> ConfigError {
        ConfigError {
            origin: path.to_owned(),
            location: None,
            message: format!("cannot read the file: {error}"),
        }
    }
}

/// The configuration file formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// YAML (primary).
    Yaml,
    /// TOML.
    Toml,
}

impl Format {
    /// The format of a function file, from its name only (nothing is read): TOML for `.toml`,
    /// YAML otherwise.
    pub fn from_path(path: &Path) -> Format {
        match path.extension().and_then(|e| e.to_str()) {
            Some("toml") => Format::Toml,
            _ => Format::Yaml,
        }
    }
}

impl Function {
    /// Loads a function from text in `format`; `origin` names it in errors.
    pub fn from_str(text: &str, format: Format, origin: &Path) -> Result<Function, ConfigError> {
        let err = |location: Option<(usize, usize)>, message: String| ConfigError {
            origin: origin.to_owned(),
            location,
            message,
        };
        let raw: RawFunction = match format {
            Format::Yaml => serde_yaml_ng::from_str(text).map_err(|e| {
                let location = e.location().map(|l| (l.line(), l.column()));
                err(location, strip_location(&e.to_string()))
            })?,
            Format::Toml => toml::from_str(text).map_err(|e| {
                let location = e.span().map(|s| line_col(text, s.start));
                err(location, e.message().to_owned())
            })?,
        };
        let at_key = |key: &str| find_key(text, key);

        if raw.name.is_empty()
            || !raw.name.starts_with(|c: char| c.is_ascii_lowercase())
            || !raw
                .name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        {
            return Err(err(
                at_key("name"),
                format!(
                    "name `{}`: use lower-case letters, digits and underscores, starting with a \
                     letter (e.g. collect_payment)",
                    raw.name
                ),
            ));
        }
        if raw.purpose.trim().is_empty() {
            return Err(err(
                at_key("purpose"),
                "purpose is empty: say when the agent should collect a payment".into(),
            ));
        }
        let input_schema = raw
            .input_schema
            .unwrap_or_else(|| serde_json::json!({"type": "object", "properties": {}}));
        let validator = jsonschema::validator_for(&input_schema).map_err(|e| {
            err(
                at_key("input_schema"),
                format!("input_schema is not a valid JSON Schema: {e}"),
            )
        })?;
        if input_schema.get("type").and_then(Value::as_str) != Some("object") {
            return Err(err(
                at_key("input_schema"),
                "input_schema must describe an object (\"type\": \"object\")".into(),
            ));
        }
        for (name, connection) in [
            ("start", Some(&raw.connections.start)),
            ("success", raw.connections.success.as_ref()),
            ("failure", raw.connections.failure.as_ref()),
        ] {
            let Some(connection) = connection else {
                continue;
            };
            match url::Url::parse(&connection.url) {
                Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {}
                Ok(u) => {
                    return Err(err(
                        at_key("url"),
                        format!(
                            "connections.{name}.url `{}`: scheme `{}` is not http or https",
                            connection.url,
                            u.scheme()
                        ),
                    ))
                }
                Err(e) => {
                    return Err(err(
                        at_key("url"),
                        format!("connections.{name}.url `{}`: {e}", connection.url),
                    ))
                }
            }
            if connection.timeout_ms == 0 {
                return Err(err(
                    at_key("timeout_ms"),
                    format!("connections.{name}.timeout_ms must be more than 0"),
                ));
            }
        }
        let limits = raw.limits;
        for (key, value) in [
            (
                "inter_digit_timeout_seconds",
                limits.inter_digit_timeout_seconds,
            ),
            (
                "first_key_timeout_seconds",
                limits.first_key_timeout_seconds,
            ),
        ] {
            if !(value > 0.0 && value <= 300.0) {
                return Err(err(
                    at_key(key),
                    format!("limits.{key} must be more than 0 and at most 300, got {value}"),
                ));
            }
        }
        if limits.per_field_retry_limit > 20 {
            return Err(err(
                at_key("per_field_retry_limit"),
                format!(
                    "limits.per_field_retry_limit {} is more than 20",
                    limits.per_field_retry_limit
                ),
            ));
        }

        let mut env = template::environment();
        let mut set_variables = BTreeMap::new();
        for (name, value) in raw.set_variables {
            let variable = match value {
                Value::String(source) => {
                    env.add_template_owned(format!("set_variables.{name}"), source.clone())
                        .map_err(|e| {
                            err(
                                at_key(&name),
                                format!("set_variables.{name}: bad template: {}", describe(&e)),
                            )
                        })?;
                    SetVariable::Template(source)
                }
                other => SetVariable::Static(other),
            };
            set_variables.insert(name, variable);
        }
        for key in raw.messages.keys() {
            if !MessageKind::ALL.iter().any(|k| k.as_str() == key) {
                return Err(err(
                    at_key(key),
                    format!(
                        "unknown message `{key}`; messages are: {}",
                        MessageKind::ALL.map(MessageKind::as_str).join(", ")
                    ),
                ));
            }
        }
        let mut messages = BTreeMap::new();
        for kind in MessageKind::ALL {
            let source = raw
                .messages
                .get(kind.as_str())
                .cloned()
                .unwrap_or_else(|| kind.default_template().to_owned());
            messages.insert(kind, source.clone());
            env.add_template_owned(format!("messages.{}", kind.as_str()), source)
                .map_err(|e| {
                    err(
                        at_key(kind.as_str()),
                        format!("messages.{}: bad template: {}", kind.as_str(), describe(&e)),
                    )
                })?;
        }
        Ok(Function {
            name: raw.name,
            purpose: raw.purpose,
            input_schema,
            validator,
            set_variables,
            connections: raw.connections,
            limits,
            messages,
            env,
        })
    }

    /// The template source of a message: the configured one, or the default.
    pub fn message_template(&self, kind: MessageKind) -> &str {
        self.messages
            .get(&kind)
            .map_or(kind.default_template(), String::as_str)
    }

    /// Checks input parameters against the input schema; the errors say which and why.
    pub fn validate_params(&self, params: &Value) -> Result<(), Vec<String>> {
        let errors: Vec<String> = self
            .validator
            .iter_errors(params)
            .map(|e| {
                let path = e.instance_path().to_string();
                if path.is_empty() {
                    e.to_string()
                } else {
                    format!("{path}: {e}")
                }
            })
            .collect();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }
}

fn describe(e: &minijinja::Error) -> String {
    match e.line() {
        Some(line) => format!(
            "{} (template line {line})",
            e.detail().unwrap_or(&e.to_string())
        ),
        None => e.to_string(),
    }
}

/// serde_yaml_ng appends " at line L column C" to messages; the location is reported apart.
fn strip_location(message: &str) -> String {
    match message.find(" at line ") {
        Some(i) => message[..i].to_owned(),
        None => message.to_owned(),
    }
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
    (line, column)
}

/// The line and column of the first `key:` (YAML) or `key =` (TOML) in the text.
fn find_key(text: &str, key: &str) -> Option<(usize, usize)> {
    text.lines().enumerate().find_map(|(i, line)| {
        let trimmed = line.trim_start();
        let rest = trimmed.strip_prefix(key)?;
        let rest = rest.trim_start();
        (rest.starts_with(':') || rest.starts_with('='))
            .then(|| (i + 1, line.len() - trimmed.len() + 1))
    })
}
