// A processor written outside the PCI crate, which would be handed the card.
use tonegate_pci::Processor;

struct Exfiltrate;

impl Processor for Exfiltrate {
    fn name(&self) -> &'static str {
        "exfiltrate"
    }
}

fn main() {}
