//! `tonegate demo`: the whole product on 127.0.0.1 in one command. The gateway, stand-ins for
//! the customer's endpoints and a caller sending real RTP (all from `tonegate_testkit`), and
//! the agent's view printed as a session runs.

use std::process::ExitCode;
use std::time::Duration;

use serde_json::json;
use tonegate::serve::{Gateway, Running, ServeConfig};
use tonegate_testkit::agent::{wait_for, Agent};
use tonegate_testkit::caller::Caller;
use tonegate_testkit::standin::{customer_endpoints, demo_function};

use super::runtime;

/// Options of `tonegate demo`.
#[derive(Debug, clap::Args)]
pub(crate) struct DemoArgs {
    /// The card the caller types (a sandbox test card decides the outcome).
    #[arg(long, default_value = "4242424242424242")]
    card: String,
    /// Milliseconds between RTP packets (20 is real time).
    #[arg(long, default_value_t = 20)]
    pace_ms: u64,
    /// Send the keys as in-band tones in the audio instead of RFC 4733 telephone-events.
    #[arg(long)]
    inband: bool,
}

pub(crate) fn run(args: DemoArgs) -> ExitCode {
    let pace = std::time::Duration::from_millis(args.pace_ms);
    match runtime().block_on(demo(&args.card, pace, args.inband)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tonegate demo: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Runs the demo: gateway, stand-ins, a caller paying with `card` (the sandbox's test cards
/// decide the outcome), printing what the agent side sees and what the endpoints receive.
async fn demo(card: &str, pace: Duration, inband: bool) -> anyhow::Result<()> {
    let (customer, received) = customer_endpoints(
        json!({
            "amount": 4200, "currency": "USD", "description": "Order #10482",
            "processor_parameters": {"invoice_id": "INV-10482", "is_postal_code_required": true}
        }),
        200,
    )
    .await?;
    let dir = std::env::temp_dir().join(format!("tonegate-demo-{}", std::process::id()));
    let config = ServeConfig::local(
        &dir,
        &demo_function(customer),
        "demo-telephony",
        "demo-agent",
    )?;
    let running: Running = Gateway::start(config, None).await?;
    println!(
        "tonegate demo: gateway on http://{}, customer endpoints on http://{customer}",
        running.addr
    );
    let agent = Agent::new(running.addr, "demo-telephony", "demo-agent");
    let (call, rtp) = agent.create_call().await?;
    println!("call         {call}: caller's RTP goes to {rtp}");
    let mut caller = Caller::new(rtp, pace).await?;
    caller.audio(10).await?;
    let session = agent.invoke(&call).await?;
    println!("session      {session}");
    let mut events = agent.events(&session).await?;
    let limit = Duration::from_secs(30);
    wait_for(&mut events, "say", true, limit).await?; // disclaimer
    wait_for(&mut events, "say", true, limit).await?; // amount
    println!("caller       \"yes\"  -> agent confirms the amount");
    agent.act(&session, "confirm_amount").await?;
    let expiry = "1230";
    let cvc = if card.starts_with("34") || card.starts_with("37") {
        "1234"
    } else {
        "123"
    };
    let keys = format!("{card}#{expiry}{cvc}94107#");
    if inband {
        println!(
            "caller       keys {} digits as in-band tones in the audio (no RFC 4733)",
            keys.len()
        );
        caller.press_inband(&keys).await?;
    } else {
        println!(
            "caller       keys {} digits as RFC 4733 telephone-events",
            keys.len()
        );
        caller.press(&keys).await?;
    }
    wait_for(&mut events, "masked_summary", true, limit).await?;
    wait_for(&mut events, "say", true, limit).await?;
    println!("caller       \"yes\"  -> agent confirms the card");
    agent.act(&session, "confirm_card").await?;
    let outcome = wait_for(&mut events, "outcome", true, limit).await?;
    caller.audio(5).await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    for (path, body) in received.lock().unwrap().iter() {
        println!("endpoint     {path} received {body}");
    }
    agent.hang_up(&call).await?;
    running.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
    if outcome["state"] != "succeeded" {
        println!(
            "tonegate demo: the payment did not succeed ({})",
            outcome["failed_reason"]
        );
    }
    Ok(())
}
