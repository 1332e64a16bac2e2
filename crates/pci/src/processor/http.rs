//! The `http` processor: a generic JSON connector for a customer's own PCI-compliant gateway
//! or vault.
//!
//! One request per payment: the body is a minijinja template rendered with the card (see
//! `docs/processors.md` for the context), sent with an `Idempotency-Key` header and the
//! configured authentication; the answer is read through JSON pointers.
//!
//! | answer | result |
//! |---|---|
//! | 2xx, value at `success_path` in `success_values` | approved (`transaction_id_path`, `token_id_path`) |
//! | 2xx, anything else at `success_path` | declined (`decline_code_path`, else `declined`) |
//! | 402 | declined (`decline_code_path`, else `declined`) |
//! | other 4xx with a decline code at `decline_code_path` | declined |
//! | other 4xx, 3xx (redirects are not followed), 5xx | processor error |
//! | a body that is not JSON, a timeout, a connection failure | processor error |
//!
//! Nothing is retried: once a request may have reached the processor, only the idempotency
//! key makes a retry safe, and retrying is the caller's decision (a retried [`super::pay`] of
//! the same session sends the same key).
//!
//! Card data here: the rendered body, which lives in a `SecretBuffer` (zeroed when dropped,
//! also when it grows) and is never logged; template errors name a line, never a value.

use std::fmt;
use std::io;
use std::ops::Deref;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use minijinja::{AutoEscape, Environment};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use reqwest::{Method, StatusCode, Url};
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use serde_json::Value;
use sha2::Sha256;
use zeroize::{Zeroize, Zeroizing};

use super::config::{
    http_client, parse_url, timeout, HttpAuth, HttpConfig, HttpMethod, ProcessorConfigError,
    ResponseMapping, SignatureEncoding,
};
use super::{Approval, Connector, PaymentRequest, Processor, Refusal, TokenType};
use crate::card::{PaymentView, SealedCard};

const CHARGE: &str = "charge_template";
const TOKENIZE: &str = "tokenize_template";

/// The `http` processor, built from an [`HttpConfig`] by
/// [`super::ProcessorConfig::build`] or [`HttpProcessor::new`].
pub struct HttpProcessor {
    client: reqwest::Client,
    charge_url: Url,
    tokenize_url: Url,
    method: Method,
    timeout: Duration,
    headers: HeaderMap,
    auth: Auth,
    templates: Environment<'static>,
    has_tokenize_template: bool,
    mapping: ResponseMapping,
}

impl fmt::Debug for HttpProcessor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpProcessor")
            .field("charge_url", &self.charge_url.as_str())
            .field("tokenize_url", &self.tokenize_url.as_str())
            .field("method", &self.method)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

enum Auth {
    None,
    /// A ready `Authorization` value (bearer or basic), marked sensitive.
    Header(HeaderValue),
    Hmac {
        secret: SecretString,
        header: HeaderName,
        encoding: SignatureEncoding,
        prefix: String,
        timestamp_header: Option<HeaderName>,
    },
}

impl HttpProcessor {
    /// Checks `config` (URLs, templates, CA certificate, headers, JSON pointers) and builds the
    /// connector.
    pub fn new(config: &HttpConfig) -> Result<HttpProcessor, ProcessorConfigError> {
        let charge_url = parse_url("url", &config.url)?;
        let tokenize_url = match &config.tokenize_url {
            Some(url) => parse_url("tokenize_url", url)?,
            None => charge_url.clone(),
        };
        let timeout = timeout(config.timeout_ms)?;
        let client = http_client(timeout, config.ca_certificate_pem.as_deref())?;

        let mut headers = HeaderMap::new();
        for (name, value) in &config.headers {
            let header_name = header_name(name)?;
            let mut header_value = HeaderValue::from_str(value.expose_secret()).map_err(|_| {
                ProcessorConfigError::BadHeader {
                    name: name.clone(),
                    reason: "the value holds characters a header cannot carry",
                }
            })?;
            header_value.set_sensitive(true);
            headers.insert(header_name, header_value);
        }

        let auth = match &config.auth {
            HttpAuth::None => Auth::None,
            HttpAuth::Bearer { token } => Auth::Header(authorization(
                "auth.token",
                &format!("Bearer {}", token.expose_secret()),
            )?),
            HttpAuth::Basic { username, password } => {
                let credentials =
                    Zeroizing::new(format!("{username}:{}", password.expose_secret()));
                let encoded = Zeroizing::new(
                    base64::engine::general_purpose::STANDARD.encode(credentials.as_bytes()),
                );
                Auth::Header(authorization(
                    "auth.password",
                    &format!("Basic {}", encoded.as_str()),
                )?)
            }
            HttpAuth::Hmac(hmac) => {
                if hmac.secret.expose_secret().is_empty() {
                    return Err(ProcessorConfigError::BadSecret {
                        field: "auth.secret",
                        reason: "the HMAC key is empty",
                    });
                }
                Auth::Hmac {
                    secret: hmac.secret.clone(),
                    header: header_name(&hmac.header)?,
                    encoding: hmac.encoding,
                    prefix: hmac.prefix.clone(),
                    timestamp_header: hmac
                        .timestamp_header
                        .as_deref()
                        .map(header_name)
                        .transpose()?,
                }
            }
        };

        let mapping = config.response.clone();
        check_mapping(&mapping)?;

        let mut templates = Environment::new();
        // Every `{{ value }}` is written as a JSON literal (strings quoted and escaped), so a
        // description with a quote in it cannot break, or inject into, the body.
        templates.set_auto_escape_callback(|_| AutoEscape::Json);
        add_template(&mut templates, CHARGE, &config.charge_template)?;
        if let Some(source) = &config.tokenize_template {
            add_template(&mut templates, TOKENIZE, source)?;
        }

        let processor = HttpProcessor {
            client,
            charge_url,
            tokenize_url,
            method: match config.method {
                HttpMethod::Post => Method::POST,
                HttpMethod::Put => Method::PUT,
                HttpMethod::Patch => Method::PATCH,
            },
            timeout,
            headers,
            auth,
            templates,
            has_tokenize_template: config.tokenize_template.is_some(),
            mapping,
        };
        processor.check_renders(CHARGE)?;
        if processor.has_tokenize_template {
            processor.check_renders(TOKENIZE)?;
        }
        Ok(processor)
    }

    /// Renders `template` once with a sample test card and checks the output is JSON, so a
    /// missing comma fails at start-up instead of on a caller's card.
    fn check_renders(&self, template: &'static str) -> Result<(), ProcessorConfigError> {
        let sample = CardContext {
            number: "4242424242424242",
            exp_month: 12,
            exp_year: 2030,
            security_code: Some("123"),
            postal_code: Some("94107"),
            brand: Some("visa"),
        };
        let parameters = serde_json::Map::new();
        let context = Context {
            card: Some(sample),
            bank: None,
            amount: 1000,
            currency: "USD",
            description: Some("sample"),
            processor_parameters: &parameters,
            token_type: Some(TokenType::OneTime.as_str()),
            session_reference: "sample",
            idempotency_key: "tonegate-sample-charge",
        };
        let body = self
            .render(template, &context)
            .map_err(|e| template_error(template, &e))?;
        serde_json::from_slice::<serde::de::IgnoredAny>(body.as_bytes()).map_err(|e| {
            ProcessorConfigError::TemplateNotJson {
                template,
                reason: format!(
                    "line {} column {}: {:?}",
                    e.line(),
                    e.column(),
                    e.classify()
                ),
            }
        })?;
        Ok(())
    }

    fn render(
        &self,
        template: &'static str,
        context: &Context<'_>,
    ) -> Result<SecretBuffer, minijinja::Error> {
        let mut body = SecretBuffer::with_capacity(2048);
        self.templates
            .get_template(template)?
            .render_captured_to(context, &mut body)?;
        Ok(body)
    }

    async fn send(
        &self,
        card: &SealedCard,
        request: &PaymentRequest,
        tokenize: bool,
        now: SystemTime,
    ) -> Result<Approval, Refusal> {
        let (template, url, step) = if tokenize {
            (TOKENIZE, &self.tokenize_url, "tokenize")
        } else {
            (CHARGE, &self.charge_url, "charge")
        };
        if tokenize && !self.has_tokenize_template {
            return Err(Refusal::Error {
                message: "the http connector has no tokenize_template: it cannot tokenize"
                    .to_owned(),
            });
        }
        let idempotency_key = request.idempotency_key(step);
        let parameters = &request.processor_parameters;
        let token_type = if tokenize {
            Some(request.token_type.unwrap_or_default().as_str())
        } else {
            request.token_type.map(TokenType::as_str)
        };
        let view = card.expose();
        let (card_context, bank_context) = match &view {
            PaymentView::Card(c) => (
                Some(CardContext {
                    number: c.number,
                    exp_month: c.expiry.month(),
                    exp_year: c.expiry.year(),
                    security_code: c.security_code,
                    postal_code: c.postal_code,
                    brand: c.brand.map(crate::Brand::as_str),
                }),
                None,
            ),
            PaymentView::Bank(b) => (
                None,
                Some(BankContext {
                    routing_number: b.routing_number,
                    account_number: b.account_number,
                }),
            ),
        };
        let context = Context {
            card: card_context,
            bank: bank_context,
            amount: request.amount.0,
            currency: request.currency.as_str(),
            description: request.description.as_deref(),
            processor_parameters: parameters,
            token_type,
            session_reference: &request.session_reference,
            idempotency_key: &idempotency_key,
        };
        let body = self
            .render(template, &context)
            .map_err(|e| Refusal::Error {
                // The kind and line only: a render error's detail could quote a value.
                message: format!(
                    "the {template} failed to render (line {}: {})",
                    e.line().unwrap_or(0),
                    e.kind()
                ),
            })?;

        let mut builder = self
            .client
            .request(self.method.clone(), url.clone())
            .headers(self.headers.clone())
            .header(CONTENT_TYPE, "application/json")
            .header(ACCEPT, "application/json")
            .header("Idempotency-Key", &idempotency_key);
        match &self.auth {
            Auth::None => {}
            Auth::Header(value) => builder = builder.header(AUTHORIZATION, value.clone()),
            Auth::Hmac {
                secret,
                header,
                encoding,
                prefix,
                timestamp_header,
            } => {
                let timestamp = timestamp_header
                    .as_ref()
                    .map(|name| (name, unix_seconds(now).to_string()));
                let signature = sign(
                    secret,
                    timestamp.as_ref().map(|(_, t)| t.as_str()),
                    body.as_bytes(),
                    *encoding,
                );
                builder = builder.header(header.clone(), format!("{prefix}{signature}"));
                if let Some((name, value)) = timestamp {
                    builder = builder.header(name.clone(), value);
                }
            }
        }
        tracing::debug!(
            connector = "http",
            step,
            url = %url,
            idempotency_key = %idempotency_key,
            "sending request"
        );
        let (status, answer) = exchange(builder.body(body.into_body()), self.timeout).await?;
        tracing::debug!(
            connector = "http",
            step,
            status = status.as_u16(),
            "answered"
        );
        interpret(&self.mapping, tokenize, status, answer.as_bytes())
    }
}

impl Processor for HttpProcessor {
    fn name(&self) -> &'static str {
        "http"
    }
}

#[async_trait]
impl Connector for HttpProcessor {
    async fn charge(
        &self,
        card: &SealedCard,
        request: &PaymentRequest,
        now: SystemTime,
    ) -> Result<Approval, Refusal> {
        self.send(card, request, false, now).await
    }

    async fn tokenize(
        &self,
        card: &SealedCard,
        request: &PaymentRequest,
        now: SystemTime,
    ) -> Result<Approval, Refusal> {
        self.send(card, request, true, now).await
    }
}

/// The template context (`docs/processors.md` lists it for template authors).
#[derive(Serialize)]
struct Context<'a> {
    card: Option<CardContext<'a>>,
    bank: Option<BankContext<'a>>,
    amount: u64,
    currency: &'a str,
    description: Option<&'a str>,
    processor_parameters: &'a serde_json::Map<String, Value>,
    token_type: Option<&'static str>,
    session_reference: &'a str,
    idempotency_key: &'a str,
}

#[derive(Serialize)]
struct CardContext<'a> {
    number: &'a str,
    exp_month: u8,
    exp_year: u16,
    security_code: Option<&'a str>,
    postal_code: Option<&'a str>,
    brand: Option<&'static str>,
}

#[derive(Serialize)]
struct BankContext<'a> {
    routing_number: &'a str,
    account_number: &'a str,
}

fn add_template(
    templates: &mut Environment<'static>,
    name: &'static str,
    source: &str,
) -> Result<(), ProcessorConfigError> {
    templates
        .add_template_owned(name, source.to_owned())
        .map_err(|e| template_error(name, &e))
}

fn template_error(template: &'static str, e: &minijinja::Error) -> ProcessorConfigError {
    ProcessorConfigError::BadTemplate {
        template,
        line: e.line().unwrap_or(0),
        reason: e
            .detail()
            .map_or_else(|| e.kind().to_string(), |d| format!("{}: {d}", e.kind())),
    }
}

fn header_name(name: &str) -> Result<HeaderName, ProcessorConfigError> {
    HeaderName::from_bytes(name.as_bytes()).map_err(|_| ProcessorConfigError::BadHeader {
        name: name.to_owned(),
        reason: "not a valid header name",
    })
}

fn authorization(field: &'static str, value: &str) -> Result<HeaderValue, ProcessorConfigError> {
    let mut value = HeaderValue::from_str(value).map_err(|_| ProcessorConfigError::BadSecret {
        field,
        reason: "holds characters a header cannot carry",
    })?;
    value.set_sensitive(true);
    Ok(value)
}

fn check_mapping(mapping: &ResponseMapping) -> Result<(), ProcessorConfigError> {
    let pointers = [
        ("success_path", Some(&mapping.success_path)),
        ("transaction_id_path", mapping.transaction_id_path.as_ref()),
        ("token_id_path", mapping.token_id_path.as_ref()),
        ("decline_code_path", mapping.decline_code_path.as_ref()),
        ("message_path", mapping.message_path.as_ref()),
    ];
    for (field, pointer) in pointers {
        if let Some(pointer) = pointer {
            if !pointer.is_empty() && !pointer.starts_with('/') {
                return Err(ProcessorConfigError::BadJsonPointer {
                    field,
                    pointer: pointer.clone(),
                });
            }
        }
    }
    if mapping.success_values.is_empty() {
        return Err(ProcessorConfigError::NoSuccessValues);
    }
    Ok(())
}

/// `now` as whole seconds since the Unix epoch (0 for a time before it): the HMAC timestamp.
fn unix_seconds(now: SystemTime) -> u64 {
    now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// The HMAC-SHA256 of `timestamp + "." + body` (or of `body` alone), encoded.
fn sign(
    secret: &SecretString,
    timestamp: Option<&str>,
    body: &[u8],
    encoding: SignatureEncoding,
) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.expose_secret().as_bytes())
        .expect("HMAC takes a key of any length");
    if let Some(timestamp) = timestamp {
        mac.update(timestamp.as_bytes());
        mac.update(b".");
    }
    mac.update(body);
    let digest = mac.finalize().into_bytes();
    match encoding {
        SignatureEncoding::Hex => digest.iter().map(|b| format!("{b:02x}")).collect(),
        SignatureEncoding::Base64 => base64::engine::general_purpose::STANDARD.encode(digest),
    }
}

/// Reads the answer through the mapping (the table in the module docs).
fn interpret(
    mapping: &ResponseMapping,
    tokenize: bool,
    status: StatusCode,
    answer: &[u8],
) -> Result<Approval, Refusal> {
    let json: Option<SecretJson> = serde_json::from_slice(answer).ok().map(SecretJson);
    let at = |path: &Option<String>| {
        let json = json.as_ref()?;
        path.as_deref()
            .and_then(|p| json.pointer(p))
            .and_then(scalar_text)
    };
    let message = at(&mapping.message_path).unwrap_or_default();
    if status.is_server_error() || status.is_redirection() || status.is_informational() {
        return Err(Refusal::Error {
            message: with_detail(format!("the processor answered HTTP {status}"), &message),
        });
    }
    let Some(json) = json.as_ref() else {
        return Err(Refusal::Error {
            message: format!("the processor's answer (HTTP {status}) is not JSON"),
        });
    };
    let code = at(&mapping.decline_code_path).filter(|c| !c.is_empty());
    if status.is_success() {
        let approved = json
            .pointer(&mapping.success_path)
            .is_some_and(|v| mapping.success_values.contains(v));
        if !approved {
            return Err(Refusal::Declined {
                code: code.unwrap_or_else(|| "declined".to_owned()),
                message,
            });
        }
        let approval = Approval {
            transaction_id: at(&mapping.transaction_id_path),
            token_id: at(&mapping.token_id_path),
        };
        if tokenize && approval.token_id.is_none() {
            return Err(Refusal::Error {
                message: "the processor approved the tokenize request but sent no token at \
                          response.token_id_path"
                    .to_owned(),
            });
        }
        return Ok(approval);
    }
    match code {
        Some(code) => Err(Refusal::Declined { code, message }),
        None if status == StatusCode::PAYMENT_REQUIRED => Err(Refusal::Declined {
            code: "declined".to_owned(),
            message,
        }),
        None => Err(Refusal::Error {
            message: with_detail(format!("the processor answered HTTP {status}"), &message),
        }),
    }
}

fn with_detail(summary: String, detail: &str) -> String {
    if detail.is_empty() {
        summary
    } else {
        format!("{summary}: {detail}")
    }
}

/// A JSON string, number or boolean as text; `None` for anything else.
pub(super) fn scalar_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Sends one request and reads its whole answer. Never retries: a request that may have
/// reached the processor is the caller's to retry, with the same idempotency key.
///
/// The answer may echo card data, so it is read chunk by chunk into a [`SecretBuffer`]
/// (zeroed when dropped and when it grows); the chunks themselves are the HTTP stack's
/// buffers, freed but not zeroed (`docs/pci-boundary.md`).
pub(super) async fn exchange(
    builder: reqwest::RequestBuilder,
    timeout: Duration,
) -> Result<(StatusCode, SecretBuffer), Refusal> {
    let mut response = builder
        .send()
        .await
        .map_err(|e| transport_refusal(&e, timeout))?;
    let status = response.status();
    let expected = response
        .content_length()
        .map_or(4096, |n| n.min(1 << 20) as usize);
    let mut answer = SecretBuffer::with_capacity(expected);
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| transport_refusal(&e, timeout))?
    {
        answer.push(&chunk);
    }
    Ok((status, answer))
}

/// A processor's answer, parsed. It may echo card data, so every string in it is overwritten
/// when it is dropped (object keys and numbers are not: `docs/pci-boundary.md`). Its `Debug`
/// is a fixed text.
#[derive(PartialEq)]
pub(super) struct SecretJson(pub(super) Value);

impl Deref for SecretJson {
    type Target = Value;

    fn deref(&self) -> &Value {
        &self.0
    }
}

impl fmt::Debug for SecretJson {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretJson(<redacted>)")
    }
}

impl Drop for SecretJson {
    fn drop(&mut self) {
        fn forget(value: &mut Value) {
            match value {
                Value::String(s) => s.zeroize(),
                Value::Array(items) => items.iter_mut().for_each(forget),
                Value::Object(fields) => fields.values_mut().for_each(forget),
                Value::Null | Value::Bool(_) | Value::Number(_) => {}
            }
        }
        forget(&mut self.0);
    }
}

/// A transport failure as a processor error. The text names the kind of failure only (no URL,
/// no body).
pub(super) fn transport_refusal(error: &reqwest::Error, timeout: Duration) -> Refusal {
    let message = if error.is_timeout() {
        format!(
            "the processor did not answer within {} ms; it may have processed the payment, \
             so it is not retried",
            timeout.as_millis()
        )
    } else if error.is_connect() {
        // The source chain says why (refused, TLS certificate, DNS), without the URL.
        let mut cause = String::new();
        let mut source = std::error::Error::source(error);
        while let Some(s) = source {
            cause = s.to_string();
            source = s.source();
        }
        with_detail("could not connect to the processor".to_owned(), &cause)
    } else {
        "the request to the processor failed before an answer was read".to_owned()
    };
    Refusal::Error { message }
}

/// Card data being sent: a byte buffer that is zeroed when dropped and that, when it must
/// grow, moves to a bigger buffer and zeroes the old one (a plain `Vec` would free it as is).
pub(super) struct SecretBuffer(Zeroizing<Vec<u8>>);

impl SecretBuffer {
    pub(super) fn with_capacity(capacity: usize) -> SecretBuffer {
        SecretBuffer(Zeroizing::new(Vec::with_capacity(capacity)))
    }

    pub(super) fn push(&mut self, data: &[u8]) {
        let needed = self.0.len() + data.len();
        if needed > self.0.capacity() {
            let mut grown = Zeroizing::new(Vec::with_capacity(needed.max(self.0.capacity() * 2)));
            grown.extend_from_slice(&self.0);
            // The old buffer is zeroed as it drops here.
            self.0 = grown;
        }
        self.0.extend_from_slice(data);
    }

    pub(super) fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The request body. Our buffer is moved, not copied, and is zeroed when the HTTP stack
    /// drops it; copies the HTTP stack makes on the way to the socket (hyper's write buffer,
    /// rustls's records) are outside this crate's control (see `docs/processors.md`).
    pub(super) fn into_body(self) -> reqwest::Body {
        reqwest::Body::from(bytes::Bytes::from_owner(self.0))
    }
}

impl io::Write for SecretBuffer {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.push(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mapping() -> ResponseMapping {
        ResponseMapping {
            success_path: "/status".to_owned(),
            success_values: vec![Value::from("approved")],
            transaction_id_path: Some("/id".to_owned()),
            token_id_path: Some("/token".to_owned()),
            decline_code_path: Some("/decline/code".to_owned()),
            message_path: Some("/message".to_owned()),
        }
    }

    #[test]
    fn a_growing_secret_buffer_keeps_its_content() {
        let mut buffer = SecretBuffer::with_capacity(2);
        buffer.push(b"abc");
        buffer.push(b"defgh");
        assert_eq!(buffer.as_bytes(), b"abcdefgh");
    }

    #[test]
    fn hmac_signs_timestamp_dot_body() {
        let secret = SecretString::from("key");
        // RFC 4231-style check against a value computed independently (openssl dgst).
        let plain = sign(
            &secret,
            None,
            b"The quick brown fox jumps over the lazy dog",
            SignatureEncoding::Hex,
        );
        assert_eq!(
            plain,
            "f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8"
        );
        let stamped = sign(
            &secret,
            Some("1700000000"),
            b"{}",
            SignatureEncoding::Base64,
        );
        let manual = sign(&secret, None, b"1700000000.{}", SignatureEncoding::Base64);
        assert_eq!(stamped, manual);
    }

    #[test]
    fn the_mapping_table() {
        let m = mapping();
        let ok = |status: u16, body: &str, tokenize: bool| {
            interpret(
                &m,
                tokenize,
                StatusCode::from_u16(status).unwrap(),
                body.as_bytes(),
            )
        };
        assert_eq!(
            ok(200, r#"{"status":"approved","id":"t1"}"#, false),
            Ok(Approval {
                transaction_id: Some("t1".to_owned()),
                token_id: None
            })
        );
        assert!(matches!(
            ok(200, r#"{"status":"approved"}"#, true),
            Err(Refusal::Error { .. })
        ));
        assert_eq!(
            ok(
                200,
                r#"{"status":"declined","decline":{"code":"do_not_honor"},"message":"no"}"#,
                false
            ),
            Err(Refusal::Declined {
                code: "do_not_honor".to_owned(),
                message: "no".to_owned()
            })
        );
        assert!(
            matches!(ok(402, "{}", false), Err(Refusal::Declined { code, .. }) if code == "declined")
        );
        assert!(matches!(
            ok(422, r#"{"decline":{"code":"expired_card"}}"#, false),
            Err(Refusal::Declined { code, .. }) if code == "expired_card"
        ));
        assert!(matches!(ok(401, "{}", false), Err(Refusal::Error { .. })));
        assert!(matches!(
            ok(503, r#"{"status":"approved"}"#, false),
            Err(Refusal::Error { .. })
        ));
        assert!(matches!(
            ok(302, r#"{"status":"approved"}"#, false),
            Err(Refusal::Error { .. })
        ));
        assert!(matches!(
            ok(200, "<html>", false),
            Err(Refusal::Error { .. })
        ));
    }
}
