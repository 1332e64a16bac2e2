//! The `stripe` processor: the Stripe API's own requests and answers (form-encoded bodies,
//! bearer secret key, `Idempotency-Key` on every POST).
//!
//! - Charge: `POST /v1/payment_methods` (the card) then `POST /v1/payment_intents` with
//!   `confirm=true`. The transaction id is the PaymentIntent's id (`pi_...`): the object a
//!   merchant refunds, looks up and reconciles; its `latest_charge` is reachable from it.
//! - Tokenize (amount 0): `POST /v1/payment_methods` then `POST /v1/setup_intents` with
//!   `confirm=true` and `usage` `off_session` (reusable, payment-method) or `on_session`
//!   (one-time). The token id is the PaymentMethod's id (`pm_...`).
//! - Idempotency keys, per step, from the session reference: `payment-method`,
//!   `payment-intent`, `setup-intent`. A retried payment of the same session replays Stripe's
//!   stored answers and cannot charge twice.
//! - Declines: HTTP 402 (`card_error`) keeps `decline_code`, or `code` when there is none. An
//!   intent left in `requires_action` is declined as `authentication_required` (3-D Secure
//!   needs the cardholder's browser or app, which a phone call does not have); one left in
//!   `requires_payment_method` is declined with its `last_payment_error` code.
//! - Processor errors: 5xx, other 4xx (bad key, bad request, idempotency conflicts), a body
//!   that is not Stripe's JSON, a timeout, a connection failure, an intent still
//!   `processing`, and bank debits, which this connector does not do (ACH through Stripe
//!   needs a mandate and account verification that a keypad cannot give).

use std::fmt;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use reqwest::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use reqwest::{StatusCode, Url};
use secrecy::ExposeSecret;
use serde_json::Value;
use zeroize::Zeroizing;

use super::config::{http_client, parse_url, timeout, ProcessorConfigError, StripeConfig};
use super::http::{exchange, scalar_text, SecretBuffer, SecretJson};
use super::{Approval, Connector, PaymentRequest, Processor, Refusal, TokenType};
use crate::card::{CardView, PaymentView, SealedCard};

/// Keys of `processor_parameters` that configure tonegate's collection, not the merchant's
/// reconciliation: they are not copied into Stripe metadata.
const COLLECTION_PARAMETERS: [&str; 6] = [
    "min_postal_code_length",
    "is_postal_code_required",
    "is_security_code_required",
    "valid_card_types",
    "allowed_payment_types",
    "token_type",
];

/// A `processor_parameters` key whose string value is sent as the intents' `customer`, so a
/// reusable payment method is attached to that Stripe customer.
pub const CUSTOMER_PARAMETER: &str = "stripe_customer";

/// The `stripe` processor, built from a [`StripeConfig`].
pub struct StripeProcessor {
    client: reqwest::Client,
    base_url: Url,
    authorization: HeaderValue,
    api_version: Option<String>,
    timeout: Duration,
}

impl fmt::Debug for StripeProcessor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StripeProcessor")
            .field("base_url", &self.base_url.as_str())
            .field("api_version", &self.api_version)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl StripeProcessor {
    /// Checks `config` and builds the connector.
    pub fn new(config: &StripeConfig) -> Result<StripeProcessor, ProcessorConfigError> {
        let key = config.secret_key.expose_secret();
        if !(key.starts_with("sk_") || key.starts_with("rk_")) {
            return Err(ProcessorConfigError::BadSecret {
                field: "secret_key",
                reason: "a Stripe secret key starts with sk_ (or rk_ for a restricted key)",
            });
        }
        let mut authorization = HeaderValue::from_str(&format!("Bearer {key}")).map_err(|_| {
            ProcessorConfigError::BadSecret {
                field: "secret_key",
                reason: "holds characters a header cannot carry",
            }
        })?;
        authorization.set_sensitive(true);
        let mut base_url = parse_url("base_url", &config.base_url)?;
        if !base_url.path().ends_with('/') {
            let path = format!("{}/", base_url.path());
            base_url.set_path(&path);
        }
        let timeout = timeout(config.timeout_ms)?;
        Ok(StripeProcessor {
            client: http_client(timeout, config.ca_certificate_pem.as_deref())?,
            base_url,
            authorization,
            api_version: config.api_version.clone(),
            timeout,
        })
    }

    /// One form POST; a Stripe object back, or the refusal its error means.
    async fn post(
        &self,
        path: &str,
        form: Form,
        idempotency_key: &str,
    ) -> Result<SecretJson, Refusal> {
        let url = self.base_url.join(path).expect("a relative API path");
        let mut builder = self
            .client
            .post(url)
            .header(AUTHORIZATION, self.authorization.clone())
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header("Idempotency-Key", idempotency_key);
        if let Some(version) = &self.api_version {
            builder = builder.header("Stripe-Version", version);
        }
        tracing::debug!(
            connector = "stripe",
            path,
            idempotency_key,
            "sending request"
        );
        let (status, answer) = exchange(builder.body(form.0.into_body()), self.timeout).await?;
        tracing::debug!(
            connector = "stripe",
            path,
            status = status.as_u16(),
            "answered"
        );
        read_answer(status, answer.as_bytes())
    }

    async fn create_payment_method(
        &self,
        card: &CardView<'_>,
        request: &PaymentRequest,
    ) -> Result<String, Refusal> {
        let mut form = Form::new();
        form.pair("type", "card");
        form.pair("card[number]", card.number);
        // Card data: the expiry's text is zeroed when dropped.
        form.pair(
            "card[exp_month]",
            &Zeroizing::new(card.expiry.month().to_string()),
        );
        form.pair(
            "card[exp_year]",
            &Zeroizing::new(card.expiry.year().to_string()),
        );
        if let Some(cvc) = card.security_code {
            form.pair("card[cvc]", cvc);
        }
        if let Some(postal_code) = card.postal_code {
            form.pair("billing_details[address][postal_code]", postal_code);
        }
        let payment_method = self
            .post(
                "v1/payment_methods",
                form,
                &request.idempotency_key("payment-method"),
            )
            .await?;
        string_at(&payment_method, "/id").ok_or_else(|| malformed("the PaymentMethod has no id"))
    }

    fn intent_form(request: &PaymentRequest, payment_method: &str) -> Form {
        let mut form = Form::new();
        form.pair("payment_method", payment_method);
        form.pair("confirm", "true");
        form.pair("payment_method_types[]", "card");
        if let Some(Value::String(customer)) = request.processor_parameters.get(CUSTOMER_PARAMETER)
        {
            form.pair("customer", customer);
        }
        for (key, value) in &request.processor_parameters {
            if COLLECTION_PARAMETERS.contains(&key.as_str()) || key == CUSTOMER_PARAMETER {
                continue;
            }
            let text = match value {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                _ => continue,
            };
            form.pair(&format!("metadata[{key}]"), &text);
        }
        form
    }
}

impl Processor for StripeProcessor {
    fn name(&self) -> &'static str {
        "stripe"
    }
}

#[async_trait]
impl Connector for StripeProcessor {
    async fn charge(
        &self,
        card: &SealedCard,
        request: &PaymentRequest,
        _now: SystemTime,
    ) -> Result<Approval, Refusal> {
        let payment_method = match card.expose() {
            PaymentView::Card(card) => self.create_payment_method(&card, request).await?,
            PaymentView::Bank(_) => return Err(no_bank_debits()),
        };
        let mut form = Self::intent_form(request, &payment_method);
        form.pair("amount", &request.amount.0.to_string());
        form.pair("currency", &request.currency.as_str().to_ascii_lowercase());
        if let Some(description) = &request.description {
            form.pair("description", description);
        }
        let intent = self
            .post(
                "v1/payment_intents",
                form,
                &request.idempotency_key("payment-intent"),
            )
            .await?;
        let id = intent_succeeded(&intent, "PaymentIntent")?;
        Ok(Approval {
            transaction_id: Some(id),
            token_id: None,
        })
    }

    async fn tokenize(
        &self,
        card: &SealedCard,
        request: &PaymentRequest,
        _now: SystemTime,
    ) -> Result<Approval, Refusal> {
        let payment_method = match card.expose() {
            PaymentView::Card(card) => self.create_payment_method(&card, request).await?,
            PaymentView::Bank(_) => return Err(no_bank_debits()),
        };
        let mut form = Self::intent_form(request, &payment_method);
        let usage = match request.token_type.unwrap_or_default() {
            TokenType::OneTime => "on_session",
            TokenType::Reusable | TokenType::PaymentMethod => "off_session",
        };
        form.pair("usage", usage);
        let intent = self
            .post(
                "v1/setup_intents",
                form,
                &request.idempotency_key("setup-intent"),
            )
            .await?;
        intent_succeeded(&intent, "SetupIntent")?;
        Ok(Approval {
            transaction_id: None,
            token_id: Some(payment_method),
        })
    }
}

/// A form-encoded body in a [`SecretBuffer`]: it holds the card.
struct Form(SecretBuffer);

impl Form {
    fn new() -> Form {
        Form(SecretBuffer::with_capacity(1024))
    }

    fn pair(&mut self, key: &str, value: &str) {
        if !self.0.as_bytes().is_empty() {
            self.0.push(b"&");
        }
        for chunk in form_urlencoded::byte_serialize(key.as_bytes()) {
            self.0.push(chunk.as_bytes());
        }
        self.0.push(b"=");
        for chunk in form_urlencoded::byte_serialize(value.as_bytes()) {
            self.0.push(chunk.as_bytes());
        }
    }
}

/// Stripe's answer: the object on 2xx, else the refusal its `error` means.
fn read_answer(status: StatusCode, answer: &[u8]) -> Result<SecretJson, Refusal> {
    let Ok(json) = serde_json::from_slice::<Value>(answer).map(SecretJson) else {
        return Err(malformed(&format!(
            "stripe answered HTTP {status} with a body that is not JSON"
        )));
    };
    if status.is_success() {
        return if json.is_object() {
            Ok(json)
        } else {
            Err(malformed(&format!(
                "stripe answered HTTP {status} with JSON that is not an object"
            )))
        };
    }
    let kind = string_at(&json, "/error/type").unwrap_or_default();
    let code = string_at(&json, "/error/code");
    let decline_code = string_at(&json, "/error/decline_code");
    let message = string_at(&json, "/error/message").unwrap_or_default();
    if status == StatusCode::PAYMENT_REQUIRED || kind == "card_error" {
        return Err(Refusal::Declined {
            code: decline_code
                .or(code)
                .unwrap_or_else(|| "card_declined".to_owned()),
            message,
        });
    }
    let mut summary = format!("stripe answered HTTP {status}");
    if !kind.is_empty() {
        summary.push_str(&format!(" ({kind}"));
        if let Some(code) = code {
            summary.push_str(&format!(", {code}"));
        }
        summary.push(')');
    }
    if !message.is_empty() {
        summary.push_str(&format!(": {message}"));
    }
    Err(Refusal::Error { message: summary })
}

/// The intent's id when it succeeded; otherwise what its status means.
fn intent_succeeded(intent: &Value, object: &str) -> Result<String, Refusal> {
    let id =
        string_at(intent, "/id").ok_or_else(|| malformed(&format!("the {object} has no id")))?;
    let status = string_at(intent, "/status")
        .ok_or_else(|| malformed(&format!("the {object} has no status")))?;
    let error = intent
        .get("last_payment_error")
        .or_else(|| intent.get("last_setup_error"));
    let error_code = || {
        error.and_then(|e| {
            string_at(e, "/decline_code")
                .or_else(|| string_at(e, "/code"))
                .filter(|c| !c.is_empty())
        })
    };
    let error_message = || {
        error
            .and_then(|e| string_at(e, "/message"))
            .unwrap_or_default()
    };
    match status.as_str() {
        "succeeded" => Ok(id),
        "requires_action" => Err(Refusal::Declined {
            code: "authentication_required".to_owned(),
            message: "the card requires 3-D Secure authentication, which cannot happen on a \
                      phone call"
                .to_owned(),
        }),
        "requires_payment_method" => Err(Refusal::Declined {
            code: error_code().unwrap_or_else(|| "card_declined".to_owned()),
            message: error_message(),
        }),
        "processing" => Err(Refusal::Error {
            message: format!("the {object} {id} is still processing; its result is not known yet"),
        }),
        other => Err(Refusal::Error {
            message: format!("the {object} {id} ended in status {other}"),
        }),
    }
}

fn string_at(json: &Value, pointer: &str) -> Option<String> {
    json.pointer(pointer).and_then(scalar_text)
}

fn malformed(what: &str) -> Refusal {
    Refusal::Error {
        message: format!("{what} (a malformed Stripe answer)"),
    }
}

fn no_bank_debits() -> Refusal {
    Refusal::Error {
        message: "the stripe connector does not do bank debits (ach-debit): use the http \
                  connector, or allow only credit-card"
            .to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_are_percent_encoded() {
        let mut form = Form::new();
        form.pair("card[number]", "4242");
        form.pair("description", "a & b = c");
        assert_eq!(
            form.0.as_bytes(),
            b"card%5Bnumber%5D=4242&description=a+%26+b+%3D+c"
        );
    }

    #[test]
    fn intent_statuses() {
        let intent = |status: &str| serde_json::json!({"id": "pi_1", "status": status});
        assert_eq!(
            intent_succeeded(&intent("succeeded"), "PaymentIntent"),
            Ok("pi_1".to_owned())
        );
        assert!(matches!(
            intent_succeeded(&intent("requires_action"), "PaymentIntent"),
            Err(Refusal::Declined { code, .. }) if code == "authentication_required"
        ));
        let failed = serde_json::json!({"id": "pi_1", "status": "requires_payment_method",
            "last_payment_error": {"code": "card_declined", "decline_code": "do_not_honor",
            "message": "Your card was declined."}});
        assert!(matches!(
            intent_succeeded(&failed, "PaymentIntent"),
            Err(Refusal::Declined { code, .. }) if code == "do_not_honor"
        ));
        assert!(matches!(
            intent_succeeded(&intent("processing"), "PaymentIntent"),
            Err(Refusal::Error { .. })
        ));
        assert!(matches!(
            intent_succeeded(&serde_json::json!({"status": "succeeded"}), "PaymentIntent"),
            Err(Refusal::Error { .. })
        ));
    }

    #[test]
    fn stripe_errors() {
        let declined = br#"{"error":{"type":"card_error","code":"card_declined","decline_code":"insufficient_funds","message":"Your card has insufficient funds."}}"#;
        assert_eq!(
            read_answer(StatusCode::PAYMENT_REQUIRED, declined),
            Err(Refusal::Declined {
                code: "insufficient_funds".to_owned(),
                message: "Your card has insufficient funds.".to_owned()
            })
        );
        let expired = br#"{"error":{"type":"card_error","code":"expired_card","message":"x"}}"#;
        assert!(matches!(
            read_answer(StatusCode::PAYMENT_REQUIRED, expired),
            Err(Refusal::Declined { code, .. }) if code == "expired_card"
        ));
        let auth = br#"{"error":{"type":"invalid_request_error","message":"Invalid API Key"}}"#;
        assert!(matches!(
            read_answer(StatusCode::UNAUTHORIZED, auth),
            Err(Refusal::Error { message }) if message.contains("401")
        ));
        assert!(matches!(
            read_answer(StatusCode::OK, b"{\"id\":"),
            Err(Refusal::Error { .. })
        ));
        assert!(matches!(
            read_answer(StatusCode::INTERNAL_SERVER_ERROR, b"{}"),
            Err(Refusal::Error { .. })
        ));
    }
}
