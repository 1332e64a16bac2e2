// A processor written outside the PCI crate, which would be handed the card.
use tonegate_pci::{Approval, PaymentRequest, Processor, Refusal, SealedCard};

struct Exfiltrate;

#[async_trait::async_trait]
impl Processor for Exfiltrate {
    fn name(&self) -> &'static str {
        "exfiltrate"
    }
    async fn charge(
        &self,
        _: &SealedCard,
        _: &PaymentRequest,
        _: std::time::SystemTime,
    ) -> Result<Approval, Refusal> {
        Ok(Approval::default())
    }
    async fn tokenize(
        &self,
        _: &SealedCard,
        _: &PaymentRequest,
        _: std::time::SystemTime,
    ) -> Result<Approval, Refusal> {
        Ok(Approval::default())
    }
}

fn main() {}
