//! `pay` through the built-in sandbox processor: the whole collection-to-outcome run with no
//! network, every test card of its table.

mod support;

use std::time::{Duration, Instant, SystemTime};

use support::{bank, card, request};
use tonegate_pci::Sandbox;
use tonegate_pci::{pay, Brand, FailedReason, PaymentOutcome, TokenType};

#[tokio::test]
async fn approved_cards_charge_with_a_transaction_id_and_a_masked_card() {
    let sandbox = Sandbox::default();
    for (number, cvc, brand) in [
        ("4242424242424242", "123", Brand::Visa),
        ("5555555555554444", "123", Brand::Mastercard),
        ("378282246310005", "1234", Brand::Amex),
        ("6011111111111117", "123", Brand::Discover),
    ] {
        let session = format!("ps_{number}");
        match pay(
            &sandbox,
            card(number, "1230", cvc, "94107"),
            &request(&session, 4200),
            SystemTime::now(),
        )
        .await
        {
            PaymentOutcome::Succeeded {
                card,
                transaction_id,
                token_id,
            } => {
                assert_eq!(card.brand, Some(brand));
                assert_eq!(card.last4, number[number.len() - 4..]);
                assert!(transaction_id.unwrap().starts_with("ch_sandbox_"));
                assert_eq!(token_id, None);
            }
            other => panic!("{number}: {other:?}"),
        }
    }
}

#[tokio::test]
async fn decline_cards_fail_as_payment_declined_with_their_codes() {
    let sandbox = Sandbox::default();
    for (number, code) in [
        ("4000000000009995", "insufficient_funds"),
        ("4000000000000002", "do_not_honor"),
        ("4000000000000069", "expired_card"),
    ] {
        match pay(
            &sandbox,
            card(number, "1230", "123", "94107"),
            &request(number, 4200),
            SystemTime::now(),
        )
        .await
        {
            PaymentOutcome::Failed {
                reason,
                decline_code,
                card,
                message,
            } => {
                assert_eq!(reason, FailedReason::PaymentDeclined, "{number}");
                assert_eq!(decline_code.as_deref(), Some(code));
                assert_eq!(card.last4, number[12..]);
                assert!(!message.is_empty());
            }
            other => panic!("{number}: {other:?}"),
        }
    }
}

#[tokio::test]
async fn processor_errors_and_timeouts_fail_as_processor_error() {
    let sandbox = Sandbox::new(Duration::from_millis(50));
    let outcome = pay(
        &sandbox,
        card("4000000000000119", "1230", "123", "94107"),
        &request("ps_err", 4200),
        SystemTime::now(),
    )
    .await;
    assert!(matches!(
        outcome,
        PaymentOutcome::Failed {
            reason: FailedReason::ProcessorError,
            decline_code: None,
            ..
        }
    ));
    let started = Instant::now();
    let outcome = pay(
        &sandbox,
        card("4000000000000408", "1230", "123", "94107"),
        &request("ps_timeout", 4200),
        SystemTime::now(),
    )
    .await;
    // The wait is tokio's timer, which comes with the `connectors` feature; without it the
    // same refusal comes at once.
    if cfg!(feature = "connectors") {
        assert!(started.elapsed() >= Duration::from_millis(50));
    }
    match outcome {
        PaymentOutcome::Failed {
            reason, message, ..
        } => {
            assert_eq!(reason, FailedReason::ProcessorError);
            assert!(message.contains("did not answer"), "{message}");
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn the_same_session_never_charges_twice() {
    let sandbox = Sandbox::default();
    let first = pay(
        &sandbox,
        card("4242424242424242", "1230", "123", "94107"),
        &request("ps_8f21c0", 4200),
        SystemTime::now(),
    )
    .await;
    let again = pay(
        &sandbox,
        card("4242424242424242", "1230", "123", "94107"),
        &request("ps_8f21c0", 4200),
        SystemTime::now(),
    )
    .await;
    assert_eq!(first, again, "the retry gets the first answer");
    assert_eq!(sandbox.requests(), 1, "and is not a second charge");
    let other = pay(
        &sandbox,
        card("4242424242424242", "1230", "123", "94107"),
        &request("ps_other", 4200),
        SystemTime::now(),
    )
    .await;
    assert_ne!(first, other);
    assert_eq!(sandbox.requests(), 2);
}

#[tokio::test]
async fn an_amount_of_zero_tokenizes() {
    let sandbox = Sandbox::default();
    let mut req = request("ps_token", 0);
    req.token_type = Some(TokenType::Reusable);
    match pay(
        &sandbox,
        card("4242424242424242", "1230", "123", "94107"),
        &req,
        SystemTime::now(),
    )
    .await
    {
        PaymentOutcome::Succeeded {
            transaction_id,
            token_id,
            ..
        } => {
            assert_eq!(transaction_id, None);
            assert!(token_id.unwrap().starts_with("tok_sandbox_"));
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn bank_debits_go_through_the_sandbox_too() {
    let sandbox = Sandbox::default();
    let ok = pay(
        &sandbox,
        bank("110000000", "000123456789"),
        &request("ps_ach", 4200),
        SystemTime::now(),
    )
    .await;
    assert!(matches!(ok, PaymentOutcome::Succeeded { ref card, .. } if card.last4 == "6789"));
    let declined = pay(
        &sandbox,
        bank("110000000", "000111111116"),
        &request("ps_ach2", 4200),
        SystemTime::now(),
    )
    .await;
    assert!(matches!(
        declined,
        PaymentOutcome::Failed {
            reason: FailedReason::PaymentDeclined,
            ref decline_code,
            ..
        } if decline_code.as_deref() == Some("no_account")
    ));
}
