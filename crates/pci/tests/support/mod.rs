//! Shared by the pci tests: a sealed card or bank account through the public collector only,
//! payment requests, a mock server over TLS on 127.0.0.1 (plain HTTP ones come from
//! `tonegate_testkit::standin::serve`), tracing capture, and the no-leak check.
#![allow(dead_code)] // each test file uses a different part

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use tokio::net::{TcpListener, TcpStream};
use tonegate_media::{ClockRate, Key, MediaTime};
use tonegate_pci::{
    CollectEvent, Collector, CollectorConfig, Currency, MinorUnits, PaymentRequest, PaymentType,
    SealedCard, TokenType, YearMonth,
};
use tonegate_testkit::logs::LogCapture;

/// Media time `ms` milliseconds into the collection (8 kHz).
pub fn at(ms: u64) -> MediaTime {
    MediaTime::new(ms * 8, ClockRate::NARROWBAND)
}

/// Types `digits` into the collector's current field, then `#` if the field did not end by
/// itself at its maximum length.
fn type_field(collector: &mut Collector, clock: &mut u64, digits: &str) {
    let mut type_key = |collector: &mut Collector, c: char| {
        collector.handle_key(at(*clock), Key::from_char(c).unwrap());
        *clock += 200;
    };
    for c in digits.chars() {
        type_key(collector, c);
    }
    let drain = |collector: &mut Collector| {
        let mut completed = false;
        while let Some(event) = collector.poll_event() {
            match event {
                CollectEvent::FieldCompleted { .. } => completed = true,
                CollectEvent::FieldRejected { field, error, .. } => {
                    panic!("{} rejected: {}", field.as_str(), error.as_str())
                }
                _ => {}
            }
        }
        completed
    };
    if !drain(collector) {
        type_key(collector, '#');
        assert!(drain(collector), "the field did not complete");
    }
}

/// "This month" for the collector: expiry dates in the tests are after it.
pub const TODAY: (u16, u8) = (2026, 11);

/// A card typed on the keypad: number, expiry (MMYY), security code and postal code.
pub fn card(number: &str, mmyy: &str, security_code: &str, postal_code: &str) -> SealedCard {
    let config = CollectorConfig::new(YearMonth::new(TODAY.0, TODAY.1).unwrap());
    let mut collector = Collector::new(config).unwrap();
    collector.start(at(0));
    let mut clock = 500;
    for field in [number, mmyy, security_code, postal_code] {
        type_field(&mut collector, &mut clock, field);
    }
    collector.take_card().expect("a complete card")
}

/// A bank account typed on the keypad.
pub fn bank(routing_number: &str, account_number: &str) -> SealedCard {
    let mut config = CollectorConfig::new(YearMonth::new(TODAY.0, TODAY.1).unwrap());
    config.allowed_payment_types = vec![PaymentType::CreditCard, PaymentType::AchDebit];
    let mut collector = Collector::new(config).unwrap();
    collector.start(at(0));
    collector
        .switch_payment_type(at(100), PaymentType::AchDebit)
        .unwrap();
    let mut clock = 500;
    for field in [routing_number, account_number] {
        type_field(&mut collector, &mut clock, field);
    }
    collector.take_card().expect("a complete bank account")
}

/// A charge of `amount` cents in USD for session `session`, with an invoice id: what the
/// sandbox and leak tests pay with.
pub fn request(session: &str, amount: u64) -> PaymentRequest {
    let mut processor_parameters = serde_json::Map::new();
    processor_parameters.insert("invoice_id".into(), "INV-10482".into());
    PaymentRequest {
        session_reference: session.to_owned(),
        amount: MinorUnits(amount),
        currency: Currency::new("usd").unwrap(),
        description: Some("Order #10482".to_owned()),
        processor_parameters,
        token_type: None,
    }
}

/// [`request`] with what the connector tests render into their templates and forms: an
/// invoice description, an attempt number and the postal-code parameters.
pub fn charge(session: &str, amount: u64) -> PaymentRequest {
    let mut charge = request(session, amount);
    charge.description = Some("Invoice INV-10482".to_owned());
    let parameters = &mut charge.processor_parameters;
    parameters.insert("attempt".into(), 2.into());
    parameters.insert("is_postal_code_required".into(), true.into());
    parameters.insert("min_postal_code_length".into(), 5.into());
    charge
}

/// A tokenize request (amount 0) for `token_type`.
pub fn tokenize(session: &str, token_type: TokenType) -> PaymentRequest {
    PaymentRequest {
        token_type: Some(token_type),
        ..charge(session, 0)
    }
}

/// A self-signed certificate for 127.0.0.1 and localhost: (certificate PEM, server config).
pub fn self_signed() -> (String, Arc<rustls::ServerConfig>) {
    let certified =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
            .unwrap();
    let pem = certified.cert.pem();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(certified.signing_key.serialize_der().into());
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![certified.cert.der().clone()], key)
    .unwrap();
    (pem, Arc::new(config))
}

/// A TLS listener for axum: TCP accept, then the rustls handshake (a failed handshake, such
/// as a client that does not trust the certificate, is skipped).
struct TlsListener {
    tcp: TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
}

impl axum::serve::Listener for TlsListener {
    type Io = tokio_rustls::server::TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let Ok((stream, addr)) = self.tcp.accept().await else {
                continue;
            };
            if let Ok(tls) = self.acceptor.accept(stream).await {
                return (tls, addr);
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
}

/// Serves `router` over TLS on 127.0.0.1 with `config`.
pub async fn serve_tls(router: Router, config: Arc<rustls::ServerConfig>) -> SocketAddr {
    let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = tcp.local_addr().unwrap();
    let listener = TlsListener {
        tcp,
        acceptor: tokio_rustls::TlsAcceptor::from(config),
    };
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    addr
}

/// Everything `tracing` writes at TRACE, from every test of this binary: one global
/// subscriber, installed once. (A thread-local `set_default` per test is not enough: tracing
/// caches each callsite's interest globally, so a test running in parallel without a
/// subscriber can switch a callsite off for everyone.) Other tests' logs being in the buffer
/// only makes the leak checks stricter.
pub fn capture_traces() -> (LogCapture, ()) {
    static GLOBAL: std::sync::OnceLock<LogCapture> = std::sync::OnceLock::new();
    let captured = GLOBAL
        .get_or_init(|| {
            let captured = LogCapture::new();
            tracing::subscriber::set_global_default(captured.subscriber())
                .expect("no other global subscriber in this test binary");
            captured
        })
        .clone();
    (captured, ())
}

/// Whether `needle` occurs in `text` as a number of its own (not inside a longer digit run,
/// so a port number that happens to end in the security code does not count).
pub fn contains_number(text: &str, needle: &str) -> bool {
    let bytes = text.as_bytes();
    text.match_indices(needle).any(|(i, _)| {
        let before = i.checked_sub(1).map(|j| bytes[j]);
        let after = bytes.get(i + needle.len()).copied();
        !before.is_some_and(|b| b.is_ascii_digit()) && !after.is_some_and(|b| b.is_ascii_digit())
    })
}

/// Asserts that none of a card's secrets appear in `text`, in any usual form.
pub fn assert_no_card_data(what: &str, text: &str, number: &str, mmyy: &str, cvc: &str) {
    let (mm, yy) = mmyy.split_at(2);
    let forms = [
        number.to_owned(),
        mmyy.to_owned(),
        format!("{mm}/{yy}"),
        format!("{mm}/20{yy}"),
        format!("20{yy}-{mm}"),
        cvc.to_owned(),
    ];
    for form in forms {
        assert!(
            !contains_number(text, &form),
            "{what} holds card data `{form}`:\n{text}"
        );
    }
}
