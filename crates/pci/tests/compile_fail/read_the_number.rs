// Reading the digits of a collected card from outside the PCI crate.
fn leak(card: &tonegate_pci::SealedCard) {
    let _view = card.expose();
}

fn main() {}
