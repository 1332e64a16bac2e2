// Charging through a connector without `pay`: the caller would keep the card (security code
// included) after the authorization, could charge it again, and would see the processor's
// unscrubbed answer.
async fn skip_pay(
    processor: &dyn tonegate_pci::Processor,
    card: &tonegate_pci::SealedCard,
    request: &tonegate_pci::PaymentRequest,
) {
    let _ = processor.charge(card, request, std::time::SystemTime::now()).await;
}

fn main() {}
