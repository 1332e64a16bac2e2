// Printing a sealed card with Display (its Debug is a fixed "<redacted>").
fn leak(card: &tonegate_pci::SealedCard) {
    println!("{}", card);
}

fn main() {}
