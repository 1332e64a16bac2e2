//! The start connection's response: the source of truth for the payment.
//!
//! The response has the product page's shape: `amount` (minor units, 0 tokenizes), `currency`
//! (ISO 4217), `description`, and `processor_parameters`, in which the keys tonegate knows
//! (`min_postal_code_length`, `is_postal_code_required`, `is_security_code_required`,
//! `valid_card_types`, `allowed_payment_types`, `token_type`) drive collection and every other
//! key is passed to the processor untouched and echoed back on the success and failure
//! connections.

use serde_json::{Map, Value};
use tonegate_pci::{Brand, Currency, MinorUnits, PaymentType, TokenType};

use crate::currency;

/// The keys of `processor_parameters` that tonegate reads; the rest pass through.
pub const KNOWN_PARAMETERS: [&str; 6] = [
    "min_postal_code_length",
    "is_postal_code_required",
    "is_security_code_required",
    "valid_card_types",
    "allowed_payment_types",
    "token_type",
];

/// A validated start response.
#[derive(Clone, Debug, PartialEq)]
pub struct StartDetails {
    /// Amount in minor units; 0 tokenizes.
    pub amount: MinorUnits,
    /// ISO 4217 currency.
    pub currency: Currency,
    /// Free text for the processor and the messages.
    pub description: Option<String>,
    /// Whether to ask for the security code (default true).
    pub security_code_required: bool,
    /// Whether to ask for the postal code (default false).
    pub postal_code_required: bool,
    /// Minimum postal code length (default 5).
    pub min_postal_code_length: usize,
    /// Accepted brands (empty: all).
    pub valid_card_types: Vec<Brand>,
    /// Accepted payment types (default credit-card).
    pub allowed_payment_types: Vec<PaymentType>,
    /// The token to create when the amount is 0 (default one-time). Ignored for charges.
    pub token_type: Option<TokenType>,
    /// `processor_parameters` without the keys tonegate reads: passed to the processor and
    /// echoed back.
    pub passthrough: Map<String, Value>,
    /// The whole response, for message templates.
    pub raw: Value,
}

/// Why a start response was refused (the session fails with `invalid-start-response`).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid start response: {0}")]
pub struct InvalidStartResponse(pub String);

fn invalid(message: impl Into<String>) -> InvalidStartResponse {
    InvalidStartResponse(message.into())
}

impl StartDetails {
    /// Validates a start connection's JSON body.
    pub fn from_response(body: &Value) -> Result<StartDetails, InvalidStartResponse> {
        let object = body
            .as_object()
            .ok_or_else(|| invalid("the body is not a JSON object"))?;
        let amount = match object.get("amount") {
            Some(Value::Number(n)) => n.as_u64().ok_or_else(|| {
                invalid(format!(
                    "amount {n} is not a non-negative integer in minor units"
                ))
            })?,
            Some(other) => return Err(invalid(format!("amount {other} is not a number"))),
            None => return Err(invalid("amount is missing")),
        };
        let code = object
            .get("currency")
            .and_then(Value::as_str)
            .ok_or_else(|| invalid("currency is missing or not a string"))?;
        let info = currency::lookup(code)
            .ok_or_else(|| invalid(format!("currency `{code}` is not an ISO 4217 code")))?;
        let currency = Currency::new(info.code).expect("table codes are three letters");
        let description = match object.get("description") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(other) => return Err(invalid(format!("description {other} is not a string"))),
        };
        let empty = Map::new();
        let parameters = match object.get("processor_parameters") {
            None | Some(Value::Null) => &empty,
            Some(Value::Object(map)) => map,
            Some(other) => {
                return Err(invalid(format!(
                    "processor_parameters {other} is not an object"
                )))
            }
        };
        let boolean = |key: &str, default: bool| match parameters.get(key) {
            None | Some(Value::Null) => Ok(default),
            Some(Value::Bool(b)) => Ok(*b),
            Some(other) => Err(invalid(format!(
                "processor_parameters.{key} {other} is not true or false"
            ))),
        };
        let min_postal_code_length = match parameters.get("min_postal_code_length") {
            None | Some(Value::Null) => 5,
            Some(v) => v.as_u64().filter(|n| (1..=10).contains(n)).ok_or_else(|| {
                invalid(format!(
                    "processor_parameters.min_postal_code_length {v} is not 1 to 10"
                ))
            })? as usize,
        };
        let strings = |key: &str| -> Result<Vec<String>, InvalidStartResponse> {
            match parameters.get(key) {
                None | Some(Value::Null) => Ok(Vec::new()),
                Some(Value::Array(items)) => items
                    .iter()
                    .map(|item| {
                        item.as_str().map(str::to_owned).ok_or_else(|| {
                            invalid(format!(
                                "processor_parameters.{key}: {item} is not a string"
                            ))
                        })
                    })
                    .collect(),
                Some(other) => Err(invalid(format!(
                    "processor_parameters.{key} {other} is not a list"
                ))),
            }
        };
        let valid_card_types = strings("valid_card_types")?
            .iter()
            .map(|s| {
                s.parse::<Brand>()
                    .map_err(|e| invalid(format!("processor_parameters.valid_card_types: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let mut allowed_payment_types = strings("allowed_payment_types")?
            .iter()
            .map(|s| match s.as_str() {
                "credit-card" => Ok(PaymentType::CreditCard),
                "ach-debit" => Ok(PaymentType::AchDebit),
                other => Err(invalid(format!(
                    "processor_parameters.allowed_payment_types: unknown type `{other}`; known types: credit-card, ach-debit"
                ))),
            })
            .collect::<Result<Vec<_>, _>>()?;
        if allowed_payment_types.is_empty() {
            allowed_payment_types.push(PaymentType::CreditCard);
        }
        let token_type = match parameters.get("token_type") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(match s.as_str() {
                "one-time" => TokenType::OneTime,
                "reusable" => TokenType::Reusable,
                "payment-method" => TokenType::PaymentMethod,
                other => {
                    return Err(invalid(format!(
                        "processor_parameters.token_type `{other}` is not one of one-time, reusable, payment-method"
                    )))
                }
            }),
            Some(other) => return Err(invalid(format!("processor_parameters.token_type {other} is not a string"))),
        };
        let passthrough = parameters
            .iter()
            .filter(|(k, _)| !KNOWN_PARAMETERS.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        Ok(StartDetails {
            amount: MinorUnits(amount),
            currency,
            description,
            security_code_required: boolean("is_security_code_required", true)?,
            postal_code_required: boolean("is_postal_code_required", false)?,
            min_postal_code_length,
            valid_card_types,
            allowed_payment_types,
            token_type: if amount == 0 {
                Some(token_type.unwrap_or_default())
            } else {
                None
            },
            passthrough,
            raw: body.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn product_page_example() -> Value {
        json!({
            "amount": 4200, "currency": "USD", "description": "Order #10482",
            "processor_parameters": {
                "invoice_id": "INV-10482", "min_postal_code_length": 5,
                "is_postal_code_required": true, "is_security_code_required": true,
                "valid_card_types": ["visa", "amex"], "allowed_payment_types": ["credit-card"],
                "token_type": "one-time"
            }
        })
    }

    #[test]
    fn the_product_page_example_is_accepted_and_unknown_keys_pass_through() {
        let d = StartDetails::from_response(&product_page_example()).unwrap();
        assert_eq!(d.amount, MinorUnits(4200));
        assert_eq!(d.currency.as_str(), "USD");
        assert!(d.postal_code_required && d.security_code_required);
        assert_eq!(d.valid_card_types, [Brand::Visa, Brand::Amex]);
        assert_eq!(d.token_type, None, "token_type is for amount 0 only");
        assert_eq!(
            Value::Object(d.passthrough),
            json!({"invoice_id": "INV-10482"})
        );
    }

    #[test]
    fn an_amount_of_zero_tokenizes_with_the_token_type_given() {
        let body = json!({"amount": 0, "currency": "eur", "processor_parameters": {"token_type": "reusable"}});
        let d = StartDetails::from_response(&body).unwrap();
        assert_eq!(d.token_type, Some(TokenType::Reusable));
        assert_eq!(d.currency.as_str(), "EUR");
        let d = StartDetails::from_response(&json!({"amount": 0, "currency": "USD"})).unwrap();
        assert_eq!(d.token_type, Some(TokenType::OneTime));
    }

    #[test]
    fn each_invalid_field_is_refused_with_its_reason() {
        let cases = [
            (json!([1]), "not a JSON object"),
            (json!({"currency": "USD"}), "amount is missing"),
            (
                json!({"amount": -1, "currency": "USD"}),
                "non-negative integer",
            ),
            (
                json!({"amount": 42.5, "currency": "USD"}),
                "non-negative integer",
            ),
            (json!({"amount": "42", "currency": "USD"}), "not a number"),
            (
                json!({"amount": 1, "currency": "XYZ"}),
                "not an ISO 4217 code",
            ),
            (json!({"amount": 1}), "currency is missing"),
            (
                json!({"amount": 0, "currency": "USD", "processor_parameters": {"token_type": "forever"}}),
                "token_type `forever`",
            ),
            (
                json!({"amount": 1, "currency": "USD", "processor_parameters": {"valid_card_types": ["visa", "dinersclub"]}}),
                "unknown card brand `dinersclub`",
            ),
            (
                json!({"amount": 1, "currency": "USD", "processor_parameters": {"allowed_payment_types": ["crypto"]}}),
                "unknown type `crypto`",
            ),
            (
                json!({"amount": 1, "currency": "USD", "processor_parameters": {"min_postal_code_length": 0}}),
                "min_postal_code_length",
            ),
            (
                json!({"amount": 1, "currency": "USD", "processor_parameters": {"is_postal_code_required": "yes"}}),
                "is_postal_code_required",
            ),
            (
                json!({"amount": 1, "currency": "USD", "processor_parameters": []}),
                "not an object",
            ),
        ];
        for (body, says) in cases {
            let err = StartDetails::from_response(&body).unwrap_err();
            assert!(err.to_string().contains(says), "{body}: {err}");
        }
    }
}
