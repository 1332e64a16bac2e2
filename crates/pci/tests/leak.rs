//! The leak test: a whole collection and payment with a known card, with every log line at
//! TRACE, every event, every outcome, every `Debug` rendering and every panic message
//! captured; none may hold the card number, the security code, the expiry or the postal code.
//! Only the last four digits may appear, and only as part of a masked card.

mod support;

use std::panic;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use support::at;
use tonegate_media::Key;
use tonegate_pci::Sandbox;
use tonegate_pci::{pay, Collector, CollectorConfig, PaymentRequest, YearMonth};
use tonegate_testkit::logs::LogCapture;

const NUMBER: &str = "4242424242424242";
/// The sandbox's `do_not_honor` card, paid with too: a declined card is card data as well.
const DECLINED: &str = "4000000000000002";
const CVC: &str = "739";
const EXPIRY: &str = "0731";
const POSTAL: &str = "94107";

/// Every form of the secrets that must never appear.
fn forbidden() -> Vec<&'static str> {
    vec![
        NUMBER,
        "424242424242", // the number without its last four
        "4242 4242",
        DECLINED,
        "400000000000", // the declined number without its last four
        CVC,
        EXPIRY,
        "07/31",
        "07/2031",
        "2031-07",
        POSTAL,
    ]
}

fn request(session: &str) -> PaymentRequest {
    support::request(session, 4200)
}

#[test]
// The literal unwraps are the point: they panic with card data in hand.
#[allow(clippy::unnecessary_literal_unwrap)]
fn no_card_data_in_logs_events_outcomes_debug_output_or_panics() {
    let logs = LogCapture::new();
    let subscriber = logs.subscriber();
    let mut seen: Vec<String> = Vec::new();

    tracing::subscriber::with_default(subscriber, || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        let sandbox = Sandbox::default();
        for (session, number) in [("ps_ok", NUMBER), ("ps_declined", DECLINED)] {
            let mut config = CollectorConfig::new(YearMonth::new(2026, 11).unwrap());
            config.retry_limit = 3;
            let mut collector = Collector::new(config).unwrap();
            collector.start(at(0));
            // A mistyped card first (Luhn fails), a cleared field, then the real entry.
            let keys = format!(
                "{}1#{}*{number}#{EXPIRY}{CVC}{POSTAL}#",
                &number[..15],
                &number[..6]
            );
            for (i, c) in keys.chars().enumerate() {
                collector.handle_key(at(500 + 300 * i as u64), Key::from_char(c).unwrap());
                seen.push(format!("{collector:?}"));
                while let Some(event) = collector.poll_event() {
                    seen.push(format!("{event:?}"));
                    seen.push(serde_json::to_string(&event).unwrap());
                }
            }
            let card = collector.take_card().expect("collected");
            seen.push(format!("{card:?} {:?} {}", card.masked(), card.masked()));
            let outcome =
                runtime.block_on(pay(&sandbox, card, &request(session), SystemTime::now()));
            seen.push(format!("{outcome:?}"));
            seen.push(serde_json::to_string(&outcome).unwrap());
        }
    });

    // Panics while holding card data: the usual unwraps print Debug, which is redacted.
    let panics = Arc::new(Mutex::new(Vec::<String>::new()));
    let sink = panics.clone();
    let previous = panic::take_hook();
    panic::set_hook(Box::new(move |info| {
        sink.lock().unwrap().push(info.to_string());
    }));
    let card = || support::card(NUMBER, EXPIRY, CVC, POSTAL);
    let _ = panic::catch_unwind(|| Err::<(), _>(card()).unwrap());
    let _ = panic::catch_unwind(|| Ok::<_, ()>(card()).unwrap_err());
    let _ = panic::catch_unwind(|| {
        let mut collector =
            Collector::new(CollectorConfig::new(YearMonth::new(2026, 11).unwrap())).unwrap();
        collector.start(at(0));
        for (i, c) in NUMBER.chars().enumerate() {
            collector.handle_key(at(300 * i as u64), Key::from_char(c).unwrap());
        }
        Err::<(), _>(collector).expect("a collector in a panic message")
    });
    panic::set_hook(previous);
    let panics = panics.lock().unwrap().clone();
    assert_eq!(panics.len(), 3, "each case panicked: {panics:?}");

    let logs = logs.text();
    assert!(
        logs.contains("sending payment to processor") && logs.contains("visa ending 4242"),
        "the capture is real: {logs}"
    );
    let everything = format!("{logs}\n{}\n{}", seen.join("\n"), panics.join("\n"));
    for secret in forbidden() {
        assert!(
            !everything.contains(secret),
            "`{secret}` leaked:\n{everything}"
        );
    }
    // The last four appear only inside masked cards.
    for line in everything.lines().filter(|l| l.contains("4242")) {
        assert!(
            line.contains("last4") || line.contains("ending 4242"),
            "last four outside a masked card: {line}"
        );
    }
}
