// Tokenizing through a connector without `pay` (same hole as charging: the card outlives the
// request), with the public trait in scope.
use tonegate_pci::Sandbox;
use tonegate_pci::Processor as _;

async fn skip_pay(card: &tonegate_pci::SealedCard, request: &tonegate_pci::PaymentRequest) {
    let _ = Sandbox::default()
        .tokenize(card, request, std::time::SystemTime::now())
        .await;
}

fn main() {}
