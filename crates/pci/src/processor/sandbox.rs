//! The `sandbox` processor: built in, the default, no network. Deterministic test cards (the
//! table below, also in the README) behave like a real processor's; any other valid card is
//! approved. Transaction and token ids derive from the session reference, and a repeated
//! request with the same idempotency key returns the first answer without charging again.
//!
//! | card number | result |
//! |---|---|
//! | 4242 4242 4242 4242, 5555 5555 5555 4444, 3782 822463 10005, 6011 1111 1111 1117, any other valid card | approved |
//! | 4000 0000 0000 9995 | declined, `insufficient_funds` |
//! | 4000 0000 0000 0002 | declined, `do_not_honor` |
//! | 4000 0000 0000 0069 | declined, `expired_card` |
//! | 4000 0000 0000 0119 | processor error |
//! | 4000 0000 0000 0408 | no answer: times out after [`Sandbox::timeout`], a processor error (at once, without the `connectors` feature) |
//!
//! Bank debits: routing 110000000 with account 000123456789 is approved; account
//! 000111111116 is declined with `no_account`; other valid accounts are approved.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;

use super::{Approval, Connector, PaymentRequest, Processor, Refusal};
use crate::card::{PaymentView, SealedCard};

/// The sandbox processor. See the module docs for its test cards.
#[derive(Debug)]
pub struct Sandbox {
    timeout: Duration,
    answered: Mutex<HashMap<String, Result<Approval, Refusal>>>,
}

impl Default for Sandbox {
    fn default() -> Self {
        Sandbox::new(Duration::from_secs(10))
    }
}

impl Sandbox {
    /// A sandbox whose timing-out card gives up after `timeout` (a real connector's request
    /// timeout).
    pub fn new(timeout: Duration) -> Sandbox {
        Sandbox {
            timeout,
            answered: Mutex::new(HashMap::new()),
        }
    }

    /// How long the timing-out test card takes to fail (without the `connectors` feature: the
    /// time its refusal names; it comes at once).
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// How many distinct requests were processed (repeats of an idempotency key excluded).
    pub fn requests(&self) -> usize {
        self.answered.lock().expect("not poisoned").len()
    }

    async fn answer(
        &self,
        card: &SealedCard,
        request: &PaymentRequest,
        step: &str,
    ) -> Result<Approval, Refusal> {
        let key = request.idempotency_key(step);
        if let Some(previous) = self.answered.lock().expect("not poisoned").get(&key) {
            return previous.clone();
        }
        let id = short_hash(&key);
        let declined = |code: &str, message: &str| {
            Err(Refusal::Declined {
                code: code.to_owned(),
                message: message.to_owned(),
            })
        };
        let result = match card.expose() {
            PaymentView::Card(c) => match c.number {
                "4000000000009995" => {
                    declined("insufficient_funds", "Your card has insufficient funds.")
                }
                "4000000000000002" => declined("do_not_honor", "Your card was declined."),
                "4000000000000069" => declined("expired_card", "Your card has expired."),
                "4000000000000119" => Err(Refusal::Error {
                    message: "An error occurred while processing your card.".to_owned(),
                }),
                "4000000000000408" => {
                    // The wait needs a timer, which is tokio's (a runtime comes with the
                    // network connectors). Without them the same refusal comes at once.
                    #[cfg(feature = "connectors")]
                    tokio::time::sleep(self.timeout).await;
                    Err(Refusal::Error {
                        message: format!("the processor did not answer within {:?}", self.timeout),
                    })
                }
                _ => Ok(approval(request, &id)),
            },
            PaymentView::Bank(b) => match b.account_number {
                "000111111116" => declined("no_account", "The bank account could not be found."),
                _ => Ok(approval(request, &id)),
            },
        };
        self.answered
            .lock()
            .expect("not poisoned")
            .insert(key, result.clone());
        result
    }
}

fn approval(request: &PaymentRequest, id: &str) -> Approval {
    if request.is_tokenize() {
        Approval {
            transaction_id: None,
            token_id: Some(format!("tok_sandbox_{id}")),
        }
    } else {
        Approval {
            transaction_id: Some(format!("ch_sandbox_{id}")),
            token_id: None,
        }
    }
}

/// FNV-1a, as hex: stable ids for the same session, without pulling in a hash crate.
fn short_hash(text: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

impl Processor for Sandbox {
    fn name(&self) -> &'static str {
        "sandbox"
    }
}

#[async_trait]
impl Connector for Sandbox {
    async fn charge(
        &self,
        card: &SealedCard,
        request: &PaymentRequest,
        _now: SystemTime,
    ) -> Result<Approval, Refusal> {
        self.answer(card, request, "charge").await
    }

    async fn tokenize(
        &self,
        card: &SealedCard,
        request: &PaymentRequest,
        _now: SystemTime,
    ) -> Result<Approval, Refusal> {
        self.answer(card, request, "tokenize").await
    }
}
