//! The PCI leak test extended to the voice payment function: a whole session with a known card
//! (success, and a decline), every log line at TRACE from every crate, every agent event and
//! every connection body captured; no card number, security code, expiry or postal code may
//! appear, and the last four only inside a masked card.

mod support;

use support::{function, start_response, Harness};
use tonegate_control::session::AgentAction::*;
use tonegate_testkit::logs::LogCapture;

#[test]
fn no_card_digit_in_agent_events_connection_bodies_or_logs() {
    let logs = LogCapture::new();
    let subscriber = logs.subscriber();
    let mut transcripts = Vec::new();
    tracing::subscriber::with_default(subscriber, || {
        for number in ["4242424242424242", "4000000000000002"] {
            let mut h = Harness::new(function(""));
            h.start_ok(start_response(4200)).agent(ConfirmAmount);
            // A mistake, a clear, a pause, then the card.
            h.keys(&format!("{}9#", &number[..15]));
            h.keys("4242*");
            h.agent(Pause).agent(Resume);
            h.keys(&format!("{number}#0731739")).keys("94107#");
            h.agent(ConfirmCard);
            transcripts.push(h.transcript.join("\n"));
        }
    });
    let logs = logs.text();
    assert!(
        logs.contains("session state changed"),
        "the capture is real"
    );
    let everything = format!("{logs}\n{}", transcripts.join("\n"));
    for secret in [
        "4242424242424242",
        "424242424242",
        "4000000000000002",
        "400000000000",
        "0731",
        "07/31",
        "2031",
        "739",
        "94107",
    ] {
        assert!(
            !everything.contains(secret),
            "`{secret}` leaked:\n{everything}"
        );
    }
    for line in everything
        .lines()
        .filter(|l| l.contains("4242") || l.contains("0002"))
    {
        assert!(
            line.contains("last4") || line.contains("ending"),
            "last four outside a masked card: {line}"
        );
    }
}
