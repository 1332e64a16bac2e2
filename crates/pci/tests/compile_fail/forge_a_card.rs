// Building a sealed card outside the PCI crate (to smuggle digits into a connector).
fn main() {
    let _card = tonegate_pci::SealedCard { inner: todo!() };
}
