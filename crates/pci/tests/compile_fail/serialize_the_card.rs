// Serializing a sealed card.
fn leak(card: &tonegate_pci::SealedCard) -> String {
    serde_json::to_string(card).unwrap()
}

fn main() {}
