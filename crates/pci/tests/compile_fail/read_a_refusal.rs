// Reading a processor's refusal before `pay` scrubs it (its text can echo the card).
fn leak(refusal: &tonegate_pci::Refusal) -> &str {
    match refusal {
        tonegate_pci::Refusal::Declined { message, .. } => message,
        tonegate_pci::Refusal::Error { message } => message,
    }
}

fn main() {}
