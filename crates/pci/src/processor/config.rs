//! Which processor a deployment uses, as configuration: a `type`-tagged [`ProcessorConfig`]
//! that `tonegate serve` reads from YAML or TOML, and [`ProcessorConfig::build`], which checks
//! everything that can be checked before the first call (URLs, templates, the CA certificate,
//! header names, JSON pointers) so a bad file fails at start-up with a typed error rather than
//! on a caller's card.
//!
//! Secrets (tokens, passwords, HMAC keys, header values, the Stripe key) are
//! [`secrecy::SecretString`]: their `Debug` is redacted, so a config can be logged.
//!
//! ```
//! use tonegate_pci::ProcessorConfig;
//!
//! let config: ProcessorConfig = serde_json::from_str(
//!     r#"{"type": "stripe", "secret_key": "sk_test_123", "timeout_ms": 20000}"#,
//! )
//! .unwrap();
//! assert!(!format!("{config:?}").contains("sk_test_123"));
//! let built = config.build();
//! #[cfg(feature = "connectors")]
//! assert_eq!(built.unwrap().name(), "stripe");
//! #[cfg(not(feature = "connectors"))]
//! assert!(built.is_err(), "no network connectors in this build");
//! ```

use std::collections::BTreeMap;
#[cfg(feature = "connectors")]
use std::net::IpAddr;
use std::time::Duration;

#[cfg(feature = "connectors")]
use reqwest::Url;
use secrecy::SecretString;
use serde::Deserialize;

#[cfg(feature = "connectors")]
use super::http::HttpProcessor;
use super::sandbox::Sandbox;
#[cfg(feature = "connectors")]
use super::stripe::StripeProcessor;
use super::Processor;

/// The processor connector and its settings, tagged by `type`.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ProcessorConfig {
    /// The built-in sandbox: test cards, no network.
    Sandbox(SandboxConfig),
    /// A generic JSON connector for the customer's own gateway or vault.
    Http(Box<HttpConfig>),
    /// The Stripe API.
    Stripe(StripeConfig),
}

impl Default for ProcessorConfig {
    /// The sandbox, with its default timeout.
    fn default() -> Self {
        ProcessorConfig::Sandbox(SandboxConfig::default())
    }
}

impl ProcessorConfig {
    /// Whether this is the built-in sandbox, which approves every valid card but its test
    /// cards and charges nothing. It is also the [`Default`], so a deployment that names no
    /// processor gets it: a production start should check this and refuse (or warn loudly).
    pub fn is_sandbox(&self) -> bool {
        matches!(self, ProcessorConfig::Sandbox(_))
    }

    /// Calls `resolve` on every secret of the configuration (header values, bearer tokens,
    /// passwords, HMAC secrets, Stripe keys), with the setting's name, so that the caller can
    /// replace a reference by the secret it names: the gateway resolves `env:NAME` and
    /// `file:/path` (`docs/processors.md`, "Secrets"). The zone itself reads no environment
    /// and no file. The first error stops the walk and is returned.
    pub fn resolve_secrets<E>(
        &mut self,
        mut resolve: impl FnMut(&str, &mut SecretString) -> Result<(), E>,
    ) -> Result<(), E> {
        match self {
            ProcessorConfig::Sandbox(_) => Ok(()),
            ProcessorConfig::Stripe(config) => resolve("secret_key", &mut config.secret_key),
            ProcessorConfig::Http(config) => {
                for (name, value) in config.headers.iter_mut() {
                    resolve(&format!("headers.{name}"), value)?;
                }
                match &mut config.auth {
                    HttpAuth::None => Ok(()),
                    HttpAuth::Bearer { token } => resolve("auth.token", token),
                    HttpAuth::Basic { password, .. } => resolve("auth.password", password),
                    HttpAuth::Hmac(hmac) => resolve("auth.secret", &mut hmac.secret),
                }
            }
        }
    }

    /// Checks the configuration and builds the connector. Without the `connectors` feature,
    /// `http` and `stripe` are refused with [`ProcessorConfigError::NotInThisBuild`].
    pub fn build(&self) -> Result<Box<dyn Processor>, ProcessorConfigError> {
        Ok(match self {
            ProcessorConfig::Sandbox(config) => Box::new(Sandbox::new(timeout(config.timeout_ms)?)),
            #[cfg(feature = "connectors")]
            ProcessorConfig::Http(config) => Box::new(HttpProcessor::new(config)?),
            #[cfg(feature = "connectors")]
            ProcessorConfig::Stripe(config) => Box::new(StripeProcessor::new(config)?),
            #[cfg(not(feature = "connectors"))]
            ProcessorConfig::Http(_) => {
                return Err(ProcessorConfigError::NotInThisBuild { connector: "http" })
            }
            #[cfg(not(feature = "connectors"))]
            ProcessorConfig::Stripe(_) => {
                return Err(ProcessorConfigError::NotInThisBuild {
                    connector: "stripe",
                })
            }
        })
    }
}

/// Settings of the `sandbox` processor.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SandboxConfig {
    /// How long the timing-out test card takes to fail, in milliseconds (default 10 000).
    #[serde(default = "default_sandbox_timeout_ms")]
    pub timeout_ms: u64,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        SandboxConfig {
            timeout_ms: default_sandbox_timeout_ms(),
        }
    }
}

/// Settings of the `http` processor: see `docs/processors.md` for the template context and
/// the response mapping.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// Where charges are sent (`https://`; `http://` only to a loopback address).
    pub url: String,
    /// Where tokenize requests are sent; `url` when absent.
    #[serde(default)]
    pub tokenize_url: Option<String>,
    /// The request method (default `POST`).
    #[serde(default)]
    pub method: HttpMethod,
    /// The whole request's deadline, connect to last byte, in milliseconds (default 30 000).
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// Extra request headers. Values are secrets (they often carry API keys).
    #[serde(default)]
    pub headers: BTreeMap<String, SecretString>,
    /// A PEM certificate (or several) to trust besides the public roots: a private CA, or a
    /// self-signed test server's certificate.
    #[serde(default)]
    pub ca_certificate_pem: Option<String>,
    /// How requests authenticate (default: none).
    #[serde(default)]
    pub auth: HttpAuth,
    /// The minijinja template of a charge request's JSON body.
    pub charge_template: String,
    /// The minijinja template of a tokenize request's JSON body; without it, tokenizing is
    /// refused as a processor error.
    #[serde(default)]
    pub tokenize_template: Option<String>,
    /// Where the answer's fields are.
    pub response: ResponseMapping,
}

/// The `http` connector's request method.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum HttpMethod {
    /// `POST` (default).
    #[default]
    Post,
    /// `PUT`.
    Put,
    /// `PATCH`.
    Patch,
}

/// How the `http` connector authenticates, tagged by `type`.
#[derive(Debug, Default, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum HttpAuth {
    /// No authentication header (default).
    #[default]
    None,
    /// `Authorization: Bearer <token>`.
    Bearer {
        /// The token.
        token: SecretString,
    },
    /// `Authorization: Basic base64(<username>:<password>)`.
    Basic {
        /// The user name.
        username: String,
        /// The password.
        password: SecretString,
    },
    /// An HMAC-SHA256 signature of the body (see [`HmacAuth`]).
    Hmac(HmacAuth),
}

/// HMAC-SHA256 request signing. The signed bytes are the request body exactly as sent; with
/// `timestamp_header`, they are the timestamp (Unix seconds, decimal, as sent in that header),
/// a `.`, then the body. The header's value is `prefix` followed by the encoded digest.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HmacAuth {
    /// The shared key (its UTF-8 bytes).
    pub secret: SecretString,
    /// The signature's header (default `X-Signature`).
    #[serde(default = "default_signature_header")]
    pub header: String,
    /// `hex` (lower case, default) or `base64` (standard alphabet, padded).
    #[serde(default)]
    pub encoding: SignatureEncoding,
    /// Text before the digest in the header, such as `sha256=` (default none).
    #[serde(default)]
    pub prefix: String,
    /// A header to send the signing timestamp in; when set, the timestamp is signed too.
    #[serde(default)]
    pub timestamp_header: Option<String>,
}

/// How an HMAC digest is written in its header.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SignatureEncoding {
    /// Lower-case hexadecimal (default).
    #[default]
    Hex,
    /// Standard base64 with padding.
    Base64,
}

/// Where the `http` connector finds its answer, as JSON pointers (RFC 6901: `/result/status`;
/// `""` is the whole document).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResponseMapping {
    /// The value that says whether the payment was approved.
    pub success_path: String,
    /// The values at `success_path` that mean approved (default `[true]`); compared as JSON,
    /// so `"approved"` and `true` differ.
    #[serde(default = "default_success_values")]
    pub success_values: Vec<serde_json::Value>,
    /// The charge's id.
    #[serde(default)]
    pub transaction_id_path: Option<String>,
    /// The token's id (required for an approved tokenize to count).
    #[serde(default)]
    pub token_id_path: Option<String>,
    /// The decline code.
    #[serde(default)]
    pub decline_code_path: Option<String>,
    /// A human-readable message.
    #[serde(default)]
    pub message_path: Option<String>,
}

/// Settings of the `stripe` processor.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StripeConfig {
    /// The secret (`sk_...`) or restricted (`rk_...`) key, sent as a bearer token.
    pub secret_key: SecretString,
    /// The API's base URL (default `https://api.stripe.com`).
    #[serde(default = "default_stripe_base_url")]
    pub base_url: String,
    /// Each request's deadline, in milliseconds (default 30 000).
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// A `Stripe-Version` to pin (default: the account's).
    #[serde(default)]
    pub api_version: Option<String>,
    /// A PEM certificate to trust besides the public roots (a private proxy in front of
    /// Stripe, or a test server).
    #[serde(default)]
    pub ca_certificate_pem: Option<String>,
}

/// A configuration that cannot run. No variant carries a secret or card data.
#[derive(Debug, thiserror::Error)]
pub enum ProcessorConfigError {
    /// A URL that does not parse, or that would send card data unencrypted.
    #[error("{field}: `{url}` is not usable: {reason}")]
    BadUrl {
        /// The setting (`url`, `tokenize_url`, `base_url`).
        field: &'static str,
        /// The URL as configured.
        url: String,
        /// Why.
        reason: String,
    },
    /// A template that does not compile or render.
    #[error("{template}: line {line}: {reason}")]
    BadTemplate {
        /// `charge_template` or `tokenize_template`.
        template: &'static str,
        /// The line of the template (1-based; 0 when unknown).
        line: usize,
        /// The template engine's explanation.
        reason: String,
    },
    /// A template whose output, for a sample test card, is not JSON.
    #[error("{template} does not render JSON (for a sample test card): {reason}")]
    TemplateNotJson {
        /// `charge_template` or `tokenize_template`.
        template: &'static str,
        /// Where the JSON breaks (line and column of the rendered text).
        reason: String,
    },
    /// `ca_certificate_pem` holds no readable certificate.
    #[error("ca_certificate_pem: {reason}")]
    BadCaCertificate {
        /// Why.
        reason: String,
    },
    /// A header name or value that HTTP cannot carry.
    #[error("header `{name}`: {reason}")]
    BadHeader {
        /// The header's name as configured (never its value).
        name: String,
        /// Why.
        reason: &'static str,
    },
    /// A secret that cannot be used (its value is never shown).
    #[error("{field}: {reason}")]
    BadSecret {
        /// The setting.
        field: &'static str,
        /// Why.
        reason: &'static str,
    },
    /// A response path that is not a JSON pointer.
    #[error("response.{field}: `{pointer}` is not a JSON pointer (empty, or starting with `/`)")]
    BadJsonPointer {
        /// The setting.
        field: &'static str,
        /// The path as configured.
        pointer: String,
    },
    /// `success_values` is empty, so nothing could ever be approved.
    #[error("response.success_values is empty: nothing could ever be approved")]
    NoSuccessValues,
    /// A zero timeout.
    #[error("timeout_ms must be more than 0")]
    ZeroTimeout,
    /// The HTTP client could not be set up.
    #[error("the HTTP client could not be built: {0}")]
    Client(String),
    /// A network connector in a build of this crate without its `connectors` feature.
    #[error(
        "the `{connector}` processor is not in this build (tonegate-pci without its \
         `connectors` feature)"
    )]
    NotInThisBuild {
        /// `http` or `stripe`.
        connector: &'static str,
    },
}

fn default_sandbox_timeout_ms() -> u64 {
    10_000
}

fn default_timeout_ms() -> u64 {
    30_000
}

fn default_signature_header() -> String {
    "X-Signature".to_owned()
}

fn default_success_values() -> Vec<serde_json::Value> {
    vec![serde_json::Value::Bool(true)]
}

fn default_stripe_base_url() -> String {
    "https://api.stripe.com".to_owned()
}

pub(crate) fn timeout(ms: u64) -> Result<Duration, ProcessorConfigError> {
    if ms == 0 {
        return Err(ProcessorConfigError::ZeroTimeout);
    }
    Ok(Duration::from_millis(ms))
}

/// Parses a connector URL: `https`, or `http` to a loopback address only (card data never
/// crosses a network unencrypted).
#[cfg(feature = "connectors")]
pub(crate) fn parse_url(field: &'static str, url: &str) -> Result<Url, ProcessorConfigError> {
    let bad = |reason: String| ProcessorConfigError::BadUrl {
        field,
        url: url.to_owned(),
        reason,
    };
    let parsed = Url::parse(url).map_err(|e| bad(e.to_string()))?;
    match parsed.scheme() {
        "https" => {}
        "http" => {
            let host = parsed.host_str().unwrap_or_default();
            let loopback = host.eq_ignore_ascii_case("localhost")
                || host
                    .trim_start_matches('[')
                    .trim_end_matches(']')
                    .parse::<IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback());
            if !loopback {
                return Err(bad(
                    "card data needs https; plain http is allowed only to a loopback address"
                        .to_owned(),
                ));
            }
        }
        other => return Err(bad(format!("the scheme must be https, not {other}"))),
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(bad(
            "credentials belong in `auth`, not in the URL".to_owned()
        ));
    }
    Ok(parsed)
}

/// The HTTP client both network connectors use: rustls, the public roots plus an optional
/// extra CA, a whole-request deadline, and no redirects (a redirect would resend a card body
/// somewhere the configuration never named).
#[cfg(feature = "connectors")]
pub(crate) fn http_client(
    timeout: Duration,
    ca_certificate_pem: Option<&str>,
) -> Result<reqwest::Client, ProcessorConfigError> {
    let mut builder = reqwest::Client::builder()
        .use_rustls_tls()
        .https_only(false)
        .timeout(timeout)
        .connect_timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("tonegate/", env!("CARGO_PKG_VERSION")));
    if let Some(pem) = ca_certificate_pem {
        let certificates = reqwest::Certificate::from_pem_bundle(pem.as_bytes()).map_err(|e| {
            ProcessorConfigError::BadCaCertificate {
                reason: e.to_string(),
            }
        })?;
        if certificates.is_empty() {
            return Err(ProcessorConfigError::BadCaCertificate {
                reason: "no `-----BEGIN CERTIFICATE-----` block found".to_owned(),
            });
        }
        for certificate in certificates {
            builder = builder.add_root_certificate(certificate);
        }
    }
    builder.build().map_err(|e| {
        if ca_certificate_pem.is_some() {
            ProcessorConfigError::BadCaCertificate {
                reason: e.to_string(),
            }
        } else {
            ProcessorConfigError::Client(e.to_string())
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg(feature = "connectors")]
    fn plain_http_is_refused_off_loopback() {
        assert!(parse_url("url", "http://127.0.0.1:8080/pay").is_ok());
        assert!(parse_url("url", "http://localhost/pay").is_ok());
        assert!(parse_url("url", "http://[::1]:9/pay").is_ok());
        assert!(parse_url("url", "https://pay.example.com/charge").is_ok());
        for url in [
            "http://pay.example.com/charge",
            "ftp://127.0.0.1/",
            "not a url",
            "https://user:pw@pay.example.com/",
        ] {
            assert!(
                matches!(
                    parse_url("url", url),
                    Err(ProcessorConfigError::BadUrl { .. })
                ),
                "{url}"
            );
        }
    }

    #[test]
    fn the_default_processor_says_it_is_the_sandbox() {
        assert!(ProcessorConfig::default().is_sandbox());
        let parse = |json: &str| serde_json::from_str::<ProcessorConfig>(json).unwrap();
        assert!(parse(r#"{"type": "sandbox"}"#).is_sandbox());
        assert!(!parse(r#"{"type": "stripe", "secret_key": "sk_test_1"}"#).is_sandbox());
        assert!(!parse(
            r#"{"type": "http", "url": "https://pay.example.com/charge",
                "charge_template": "{}", "response": {"success_path": "/ok"}}"#
        )
        .is_sandbox());
    }

    #[test]
    fn zero_timeouts_are_refused() {
        assert!(matches!(timeout(0), Err(ProcessorConfigError::ZeroTimeout)));
        assert_eq!(timeout(250).unwrap(), Duration::from_millis(250));
    }

    #[test]
    #[cfg(feature = "connectors")]
    fn a_pem_without_certificates_is_refused() {
        let err = http_client(Duration::from_secs(1), Some("hello")).unwrap_err();
        assert!(matches!(err, ProcessorConfigError::BadCaCertificate { .. }));
    }

    #[test]
    #[cfg(not(feature = "connectors"))]
    fn without_the_connectors_feature_only_the_sandbox_builds() {
        let parse = |json: &str| serde_json::from_str::<ProcessorConfig>(json).unwrap();
        let sandbox = parse(r#"{"type": "sandbox", "timeout_ms": 50}"#).build();
        assert_eq!(sandbox.unwrap().name(), "sandbox");
        let stripe = parse(r#"{"type": "stripe", "secret_key": "sk_test_123"}"#);
        assert!(matches!(
            stripe.build(),
            Err(ProcessorConfigError::NotInThisBuild {
                connector: "stripe"
            })
        ));
        let http = parse(
            r#"{"type": "http", "url": "https://pay.example.com/charge",
                "charge_template": "{}", "response": {"success_path": "/ok"}}"#,
        );
        let err = http.build().err().expect("refused");
        assert!(err.to_string().contains("`connectors` feature"), "{err}");
    }
}
