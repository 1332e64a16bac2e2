// Reaching the connectors through the `processor` module instead of the crate root: every way
// in and out of the zone is a re-export of `lib.rs`, so an auditor reads one file, and an item
// made public inside the module does not become reachable from outside by accident.
use tonegate_pci::processor::config::ProcessorConfig;
use tonegate_pci::processor::sandbox::Sandbox;

fn main() {
    let _ = (Sandbox::default(), ProcessorConfig::default());
}
