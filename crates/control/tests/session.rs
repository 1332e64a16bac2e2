//! Whole sessions, one per path: a script of key presses and agent actions in, the exact
//! sequence of agent events, collector commands, payment requests and connection bodies out
//! (per-digit progress lines are checked once, in the success path, and left out elsewhere).

mod support;

use support::{function, start_response, Harness};
use tonegate_control::session::AgentAction::*;
use tonegate_control::session::{StartFailure, State};

const CARD: &str = "4242424242424242#1230123";
const ZIP: &str = "94107#";

fn collecting(h: &mut Harness) {
    h.start_ok(start_response(4200));
    h.agent(ConfirmAmount);
}

fn show(lines: &[String]) -> String {
    lines.join("\n")
}

#[track_caller]
fn assert_lines(h: &Harness, expected: &[&str]) {
    let got = h.lines();
    assert_eq!(
        got,
        expected.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
        "\n--- got ---\n{}\n",
        show(&got)
    );
}

const OPENING: [&str; 4] = [
    "say disclaimer: For your security, you will enter your card details on your phone's keypad. They are not heard or stored by this assistant.",
    r#"connection start {"email":"caller@example.com","order_id":"10482"}"#,
    "state starting -> awaiting_amount_confirmation",
    "say before_starting_session: You will be charged $42.00 for Order #10482. Is that okay?",
];

const COLLECT_CARD: [&str; 18] = [
    "state awaiting_amount_confirmation -> collecting",
    "collector start",
    "field card_number #1",
    "say credit_card: Please enter your card number, followed by the pound key.",
    "completed card_number visa",
    "field expiration_date #1",
    "say expiration_date: Please enter the expiration date: two digits for the month, then two for the year.",
    "completed expiration_date -",
    "field security_code #1",
    "say security_code: Please enter the three-digit security code on the back of your card.",
    "completed security_code -",
    "field postal_code #1",
    "say postal_code: Please enter your billing postal code, followed by the pound key.",
    "completed postal_code -",
    "state collecting -> awaiting_card_confirmation",
    "summary visa ending 4242",
    "say confirmation_message: You entered the Visa card ending in 4242. Shall I charge $42.00?",
    "state awaiting_card_confirmation -> processing",
];

fn expect(parts: &[&[&str]]) -> Vec<&'static str> {
    parts
        .iter()
        .flat_map(|p| p.iter())
        .map(|s| &*Box::leak(s.to_string().into_boxed_str()))
        .collect()
}

#[test]
fn success() {
    let mut h = Harness::new(function(""));
    collecting(&mut h);
    h.keys(CARD).keys(ZIP).agent(ConfirmCard);
    assert_lines(
        &h,
        &expect(&[
            &OPENING,
            &COLLECT_CARD,
            &[
                r#"pay 4200 USD {"invoice_id":"INV-10482"}"#,
                "state processing -> succeeded",
                "say payment_success: Thank you, your payment with the card ending in 4242 was successful.",
                r#"connection success {"card":{"brand":"visa","last4":"4242","payment_type":"credit-card"},"email":"caller@example.com","order_id":"10482","processor_parameters":{"invoice_id":"INV-10482"},"session_reference_id":"ps_8f21c0","token_id":null,"transaction_id":"ch_sandbox_5285d7985648c2a4"}"#,
                r#"outcome {"card":{"brand":"visa","last4":"4242","payment_type":"credit-card"},"failed_reason":null,"state":"succeeded","token_id":null,"transaction_id":"ch_sandbox_5285d7985648c2a4","type":"outcome"}"#,
            ],
        ]),
    );
    let progress: Vec<&String> = h
        .transcript
        .iter()
        .filter(|l| l.starts_with("progress card_number"))
        .collect();
    assert_eq!(progress.len(), 16);
    assert_eq!(progress[15], "progress card_number 16");
    assert_eq!(h.session.state(), State::Succeeded);
}

#[test]
fn tokenize() {
    let mut h = Harness::new(function(""));
    let mut start = start_response(0);
    start["processor_parameters"]["token_type"] = "reusable".into();
    h.start_ok(start);
    h.agent(ConfirmAmount)
        .keys(CARD)
        .keys(ZIP)
        .agent(ConfirmCard);
    let lines = h.lines();
    assert!(lines.contains(&"say before_starting_session: We will securely save your card for future payments for Order #10482. Is that okay?".to_owned()), "{}", show(&lines));
    assert!(lines.contains(
        &"say confirmation_message: You entered the Visa card ending in 4242. Shall I save it?"
            .to_owned()
    ));
    assert!(lines.contains(&r#"pay 0 USD {"invoice_id":"INV-10482"}"#.to_owned()));
    let success = lines
        .iter()
        .find(|l| l.starts_with("connection success"))
        .unwrap();
    assert!(success.contains(r#""token_id":"tok_sandbox_"#), "{success}");
    assert!(success.contains(r#""transaction_id":null"#), "{success}");
}

#[test]
fn decline() {
    let mut h = Harness::new(function(""));
    collecting(&mut h);
    h.keys("4000000000000002#1230123")
        .keys(ZIP)
        .agent(ConfirmCard);
    let lines = h.lines();
    let tail: Vec<&str> = lines[lines.len() - 5..]
        .iter()
        .map(String::as_str)
        .collect();
    assert_eq!(
        tail,
        [
            r#"pay 4200 USD {"invoice_id":"INV-10482"}"#,
            "state processing -> failed",
            "say payment_error: I'm sorry, the payment could not be completed: the card was declined.",
            r#"connection failure {"email":"caller@example.com","failed_reason":"payment-declined","order_id":"10482","processor_parameters":{"invoice_id":"INV-10482"},"session_reference_id":"ps_8f21c0"}"#,
            r#"outcome {"card":{"brand":"visa","last4":"0002","payment_type":"credit-card"},"failed_reason":"payment-declined","state":"failed","token_id":null,"transaction_id":null,"type":"outcome"}"#,
        ],
        "{}",
        show(&lines)
    );
}

#[test]
fn processor_error() {
    let mut h = Harness::new(function(""));
    collecting(&mut h);
    h.keys("4000000000000119#1230123")
        .keys(ZIP)
        .agent(ConfirmCard);
    let lines = h.lines();
    assert!(lines
        .iter()
        .any(|l| l.contains(r#""failed_reason":"processor-error""#)
            && l.starts_with("connection failure")));
    assert!(lines
        .contains(&"say payment_error: I'm sorry, the payment could not be completed.".to_owned()));
    assert_eq!(h.session.state(), State::Failed);
}

#[test]
fn each_collection_error_is_reported_and_read_then_the_field_is_asked_again() {
    let mut h = Harness::new(function("limits:\n  first_key_timeout_seconds: 4\n"));
    let mut start = start_response(4200);
    start["processor_parameters"]["valid_card_types"] = serde_json::json!(["visa"]);
    h.start_ok(start);
    h.agent(ConfirmAmount);
    h.wait(4000); // timeout
    h.keys("4242424242424241#"); // invalid-card-number
    h.keys("5555555555554444"); // invalid-card-type (ends at 16 by itself)
    h.keys("4242424242424242#");
    h.keys("1320"); // invalid-date
    h.keys("1230");
    h.keys("12#"); // invalid-security-code
    h.keys("123");
    h.keys("941#"); // invalid-postal-code
    h.keys(ZIP);
    let rejected: Vec<String> = h
        .lines()
        .into_iter()
        .filter(|l| l.starts_with("rejected") || l.starts_with("say collection_error"))
        .collect();
    assert_eq!(
        rejected,
        [
            "rejected card_number timeout #1 left 3",
            "say collection_error: I didn't receive any keypad entry. Let's try again.",
            "rejected card_number invalid-card-number #2 left 2",
            "say collection_error: That entry was not valid. Let's try again.",
            "rejected card_number invalid-card-type #3 left 1",
            "say collection_error: That card type is not accepted. Let's try again.",
            "rejected expiration_date invalid-date #1 left 3",
            "say collection_error: That expiration date is not valid. Let's try again.",
            "rejected security_code invalid-security-code #1 left 3",
            "say collection_error: That entry was not valid. Let's try again.",
            "rejected postal_code invalid-postal-code #1 left 3",
            "say collection_error: That entry was not valid. Let's try again.",
        ]
    );
    assert!(h.lines().contains(&"field card_number #4".to_owned()));
    assert_eq!(h.session.state(), State::AwaitingCardConfirmation);
}

#[test]
fn collection_error_messages_can_branch_on_the_error_and_count_retries() {
    let extra =
        "messages:\n  collection_error: '{{ field }}/{{ error }}: {{ retries_left }} left'\n";
    let mut h = Harness::new(function(extra));
    collecting(&mut h);
    h.keys("4242#");
    assert!(h
        .lines()
        .contains(&"say collection_error: card_number/invalid-card-number: 3 left".to_owned()));
}

#[test]
fn retries_exhausted() {
    let mut h = Harness::new(function("limits:\n  per_field_retry_limit: 1\n"));
    collecting(&mut h);
    h.keys("1111#").keys("2222#");
    let lines = h.lines();
    let tail: Vec<&str> = lines[lines.len() - 7..]
        .iter()
        .map(String::as_str)
        .collect();
    assert_eq!(
        tail,
        [
            "field card_number #2",
            "say credit_card: Please enter your card number, followed by the pound key.",
            "rejected card_number invalid-card-number #2 left 0",
            "state collecting -> failed",
            "say payment_error: I'm sorry, the payment could not be completed.",
            r#"connection failure {"email":"caller@example.com","failed_reason":"collection-retries-exhausted","order_id":"10482","processor_parameters":{"invoice_id":"INV-10482"},"session_reference_id":"ps_8f21c0"}"#,
            r#"outcome {"card":null,"failed_reason":"collection-retries-exhausted","state":"failed","token_id":null,"transaction_id":null,"type":"outcome"}"#,
        ],
        "{}",
        show(&lines)
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("connection failure")
                && l.contains("collection-retries-exhausted"))
    );
    assert!(lines
        .last()
        .unwrap()
        .contains(r#""failed_reason":"collection-retries-exhausted""#));
}

#[test]
fn timeouts_end_as_collection_timeout() {
    let mut h = Harness::new(function(
        "limits:\n  per_field_retry_limit: 1\n  first_key_timeout_seconds: 5\n",
    ));
    collecting(&mut h);
    h.wait(4999);
    assert_eq!(h.session.state(), State::Collecting);
    h.wait(1).wait(5000);
    let lines = h.lines();
    assert!(
        lines.contains(&"rejected card_number timeout #2 left 0".to_owned()),
        "{}",
        show(&lines)
    );
    assert!(lines
        .last()
        .unwrap()
        .contains(r#""failed_reason":"collection-timeout""#));
    assert_eq!(h.session.state(), State::Failed);
}

#[test]
fn pause_and_resume_continue_the_same_field() {
    let mut h = Harness::new(function("limits:\n  inter_digit_timeout_seconds: 3\n"));
    collecting(&mut h);
    h.keys("42424242");
    h.agent(Pause);
    h.wait(60_000).keys("999"); // a long question; keys pressed meanwhile are ignored
    h.agent(Resume);
    h.keys("42424242#1230123").keys(ZIP);
    let lines = h.lines();
    let around: Vec<&str> = lines
        .iter()
        .map(String::as_str)
        .filter(|l| {
            l.starts_with("state") || l.starts_with("collector") || l.starts_with("rejected")
        })
        .collect();
    assert_eq!(
        around,
        [
            "state starting -> awaiting_amount_confirmation",
            "state awaiting_amount_confirmation -> collecting",
            "collector start",
            "state collecting -> paused",
            "collector pause",
            "state paused -> collecting",
            "collector resume",
            "state collecting -> awaiting_card_confirmation",
        ]
    );
    assert!(h.transcript.contains(&"progress card_number 16".to_owned()));
}

#[test]
fn a_different_card_starts_again_from_the_card_number() {
    let mut h = Harness::new(function(""));
    collecting(&mut h);
    h.keys(CARD).keys(ZIP);
    h.agent(DifferentCard);
    h.keys("5555555555554444")
        .keys("1230123")
        .keys(ZIP)
        .agent(ConfirmCard);
    let lines = h.lines();
    assert!(lines.contains(&"collector different_card".to_owned()));
    assert!(lines.contains(&"state awaiting_card_confirmation -> collecting".to_owned()));
    assert!(
        lines.contains(&"summary mastercard ending 4444".to_owned()),
        "{}",
        show(&lines)
    );
    assert!(lines.last().unwrap().contains(r#""last4":"4444""#));
}

#[test]
fn cancel_in_every_state_before_processing_charges_nothing() {
    type Setup = fn(&mut Harness);
    let setups: [(State, Setup); 5] = [
        (State::Starting, |_| {}),
        (State::AwaitingAmountConfirmation, |h| {
            h.start_ok(start_response(4200));
        }),
        (State::Collecting, |h| {
            collecting(h);
            h.keys("4242");
        }),
        (State::Paused, |h| {
            collecting(h);
            h.agent(Pause);
        }),
        (State::AwaitingCardConfirmation, |h| {
            collecting(h);
            h.keys(CARD).keys(ZIP);
        }),
    ];
    for (state, setup) in setups {
        let mut h = Harness::new(function(""));
        setup(&mut h);
        assert_eq!(h.session.state(), state);
        let before = h.lines().len();
        h.agent(Cancel);
        let after = h.lines()[before..].to_vec();
        let collector_running =
            !matches!(state, State::Starting | State::AwaitingAmountConfirmation);
        let mut expected = Vec::new();
        if collector_running {
            expected.push("collector cancel".to_owned());
        }
        expected.push(format!("state {} -> cancelled", state.as_str()));
        let processor_parameters = if state == State::Starting {
            "{}"
        } else {
            r#"{"invoice_id":"INV-10482"}"#
        };
        expected.push(format!(r#"connection failure {{"email":"caller@example.com","failed_reason":"caller-cancelled","order_id":"10482","processor_parameters":{processor_parameters},"session_reference_id":"ps_8f21c0"}}"#));
        assert_eq!(
            &after[..expected.len()],
            &expected[..],
            "cancel in {state:?}:\n{}",
            show(&after)
        );
        assert!(after.last().unwrap().contains(r#""state":"cancelled""#));
        assert!(
            !h.transcript.iter().any(|l| l.starts_with("pay ")),
            "nothing charged"
        );
        assert!(h.collector.is_none() || !collector_running);
    }
}

#[test]
fn cancel_during_processing_is_refused_and_actions_after_the_end_too() {
    let mut h = Harness::new(function(""));
    collecting(&mut h);
    h.keys("4000000000000408#1230123").keys(ZIP); // the sandbox's slow card
    h.session
        .handle_input(tonegate_control::session::Input::Agent(ConfirmCard))
        .unwrap();
    let err = h
        .session
        .handle_input(tonegate_control::session::Input::Agent(Cancel))
        .unwrap_err();
    assert_eq!(err.state, "processing");
    assert!(err.to_string().contains("may already be charged"), "{err}");
    h.pump();
    assert_eq!(h.session.state(), State::Failed);
    h.agent(Cancel);
    assert!(h.refused.last().unwrap().contains("the session has ended"));
}

#[test]
fn decline_at_the_amount_confirmation_cancels() {
    let mut h = Harness::new(function(""));
    h.start_ok(start_response(4200)).agent(Decline);
    assert_eq!(h.session.state(), State::Cancelled);
    assert!(h.lines().iter().any(|l| l.contains("caller-cancelled")));
}

#[test]
fn star_can_cancel_like_twilio_pay() {
    let mut h = Harness::new(function("limits:\n  star_key: cancel-session\n"));
    collecting(&mut h);
    h.keys("4242*");
    assert_eq!(h.session.state(), State::Cancelled);
    assert!(h.lines().last().unwrap().contains("caller-cancelled"));
}

#[test]
fn a_call_ended_mid_card_says_who_ended_it() {
    // The caller hung up, or the gateway shut down with the call up: the same ending, told
    // apart in failed_reason.
    for (end, reason) in [
        (
            Harness::hang_up as fn(&mut Harness) -> &mut Harness,
            "caller-hung-up",
        ),
        (Harness::shut_down, "internal-error"),
    ] {
        let mut h = Harness::new(function(""));
        collecting(&mut h);
        end(h.keys("424242"));
        let lines = h.lines();
        let tail: Vec<&str> = lines[lines.len() - 4..]
            .iter()
            .map(String::as_str)
            .collect();
        assert_eq!(
            tail,
            [
                "collector cancel",
                "state collecting -> failed",
                &format!(
                    r#"connection failure {{"email":"caller@example.com","failed_reason":"{reason}","order_id":"10482","processor_parameters":{{"invoice_id":"INV-10482"}},"session_reference_id":"ps_8f21c0"}}"#
                ),
                &format!(
                    r#"outcome {{"card":null,"failed_reason":"{reason}","state":"failed","token_id":null,"transaction_id":null,"type":"outcome"}}"#
                ),
            ],
            "{}",
            show(&lines)
        );
        assert!(
            !lines.iter().any(|l| l.starts_with("say payment_error")),
            "nobody to tell"
        );
    }
}

#[test]
fn start_connection_down_times_out_or_errors() {
    for failure in [
        StartFailure::Unreachable("connection refused".into()),
        StartFailure::Timeout,
        StartFailure::Status(503),
    ] {
        let mut h = Harness::new(function(""));
        h.start_failed(failure.clone());
        let lines = h.lines();
        assert_eq!(
            &lines[2..],
            [
                "state starting -> failed",
                "say payment_error: I'm sorry, the payment could not be completed.",
                r#"connection failure {"email":"caller@example.com","failed_reason":"start-connection-failed","order_id":"10482","processor_parameters":{},"session_reference_id":"ps_8f21c0"}"#,
                r#"outcome {"card":null,"failed_reason":"start-connection-failed","state":"failed","token_id":null,"transaction_id":null,"type":"outcome"}"#,
            ],
            "{failure:?}"
        );
    }
}

#[test]
fn an_invalid_start_response_fails_the_session() {
    for body in [
        serde_json::json!({"amount": -5, "currency": "USD"}),
        serde_json::json!({"amount": 100, "currency": "ZZZ"}),
    ] {
        let mut h = Harness::new(function(""));
        h.start_ok(body);
        assert!(h
            .lines()
            .iter()
            .any(|l| l.contains(r#""failed_reason":"invalid-start-response""#)));
        assert_eq!(h.session.state(), State::Failed);
    }
    let mut h = Harness::new(function(""));
    h.start_failed(StartFailure::NotJson("expected value at line 1".into()));
    assert!(h
        .lines()
        .iter()
        .any(|l| l.contains("invalid-start-response")));
}

#[test]
fn a_template_error_fails_the_session_with_internal_error_and_no_charge() {
    // A Set variable that cannot render: no start connection is called at all.
    let extra = "  broken: '{{ vars.order_id | money(\"USD\") }}'\n";
    let yaml_fn = {
        let f = function("");
        drop(f);
        // Insert the broken variable under set_variables.
        let yaml = format!(
            "name: collect_payment\npurpose: p\nset_variables:\n  order_id: '{{{{ vars.get(\"order_id\") }}}}'\n{extra}connections:\n  start:\n    url: http://127.0.0.1:9/start\n  failure:\n    url: http://127.0.0.1:9/failure\n"
        );
        std::sync::Arc::new(
            tonegate_control::config::Function::from_str(
                &yaml,
                tonegate_control::config::Format::Yaml,
                std::path::Path::new("t.yaml"),
            )
            .unwrap(),
        )
    };
    let h = Harness::new(yaml_fn);
    let lines = h.lines();
    assert!(
        !lines.iter().any(|l| l.starts_with("connection start")),
        "{}",
        show(&lines)
    );
    assert!(lines
        .iter()
        .any(|l| l.starts_with("connection failure") && l.contains("internal-error")));
    assert_eq!(h.session.state(), State::Failed);

    // A message that fails mid-collection ends it, with the collector cancelled.
    let mut h = Harness::new(function(
        "messages:\n  confirmation_message: '{{ card.last4 | money(\"USD\") }}'\n",
    ));
    collecting(&mut h);
    h.keys(CARD).keys(ZIP);
    let lines = h.lines();
    assert!(
        lines
            .iter()
            .any(|l| l.contains(r#""failed_reason":"internal-error""#)),
        "{}",
        show(&lines)
    );
    assert!(lines.contains(&"collector cancel".to_owned()));
    assert!(!lines.iter().any(|l| l.starts_with("pay ")));
}

#[test]
fn the_agent_cannot_skip_steps() {
    let mut h = Harness::new(function(""));
    h.agent(ConfirmCard)
        .agent(ConfirmAmount)
        .agent(Pause)
        .agent(Resume)
        .agent(DifferentCard);
    assert_eq!(h.refused.len(), 5, "{:?}", h.refused);
    assert!(h.refused[0].contains("cannot confirm_card in state starting"));
    assert_eq!(h.session.state(), State::Starting);
}
