// Reaching into a sealed card's fields from outside the PCI crate.
fn leak(card: &tonegate_pci::SealedCard) {
    let _inner = &card.inner;
}

fn main() {}
