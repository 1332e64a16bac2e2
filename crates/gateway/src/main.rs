//! `tonegate`: the DTMF gateway for secure voice payments.
//!
//! `replay` reads a pcap or pcapng capture (RFC 4733 telephone-events and in-band tones in
//! PCMU/PCMA/L16 audio) or a WAV file (in-band tones) and prints the caller's key presses.
//! `conformance` and `talkoff` measure the in-band detector against ITU-T Q.24 and real audio,
//! side by side with spandsp when its harness is built. `check-config` validates a voice
//! payment function file; `serve` runs the gateway and `demo` shows it end to end. `mask`
//! takes key tones out of a recording as the relay does during a payment.

// One `unsafe` call in the binary, allowed where it stands: the memory map of a capture
// (cli/replay.rs). The library (`tonegate::serve`, the outbox) forbids unsafe code.
#![deny(unsafe_code)]

mod cli;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use cli::{check_config, conformance, demo, mask, replay, serve};

/// tonegate: hears DTMF key presses in call media (RFC 4733 telephone-events) for secure voice
/// payments.
#[derive(Debug, Parser)]
#[command(name = "tonegate", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print the key presses in a pcap or pcapng capture.
    ///
    /// Exit status: 0 when the capture was read to its end, 1 when nothing could be read
    /// (missing file, not a capture, unsupported link type, no RTP), 3 when the capture is
    /// damaged part-way: the presses before the damage are printed and stderr says where.
    Replay(cli::ReplayArgs),
    /// Check a voice payment function file (YAML, or TOML for `.toml`) and summarise it.
    ///
    /// Exit status 0 when the file is valid, 1 with the file, line and column of the first
    /// problem otherwise.
    CheckConfig(check_config::CheckConfigArgs),
    /// Run the gateway: calls over UDP/RTP, the telephony and agent HTTP APIs, connections.
    ///
    /// Works with no arguments on built-in defaults (sandbox processor, the example function,
    /// 127.0.0.1:8080); `--config FILE` and `TONEGATE_*` environment variables override them.
    Serve(serve::ServeArgs),
    /// One command that shows the whole product: starts the gateway, stand-ins for the
    /// customer's endpoints and a caller sending RTP key presses over 127.0.0.1, and prints
    /// what the agent side sees and what the endpoints receive.
    Demo(demo::DemoArgs),
    /// Run the in-band detector over the Q.24 conformance WAVs and print a table (tonegate and,
    /// when its harness is built, spandsp side by side). Exit status 1 if a tonegate row fails.
    Conformance(conformance::ConformanceArgs),
    /// Count false key presses on audio that holds no DTMF (speech, music), per hour, for
    /// tonegate and spandsp.
    Talkoff(conformance::TalkoffArgs),
    /// Take key tones out of a recording as the relay does during a payment: a WAV file (8 kHz
    /// mono; PCM, mu-law, A-law) back as WAV, or a pcap/pcapng capture as pcap with PCMU/PCMA
    /// payloads scrubbed in place and telephone-events removed.
    ///
    /// Exit status 0 when the masked copy was written, 1 otherwise.
    Mask(mask::MaskArgs),
}

fn main() -> ExitCode {
    // First, for every command: a panic's message can format card data, and the default hook
    // prints it (docs/pci-boundary.md, "Panics").
    tonegate::panic_hook::install();
    let cli = Cli::parse();
    if let Err(e) = tonegate::inband_config_from_env() {
        eprintln!("tonegate: {e:#}");
        return ExitCode::FAILURE;
    }
    match cli.command {
        Command::Replay(args) => replay::run(args),
        Command::CheckConfig(args) => check_config::run(args),
        Command::Serve(args) => serve::run(args),
        Command::Demo(args) => demo::run(args),
        Command::Conformance(args) => conformance::run_conformance(&args),
        Command::Talkoff(args) => conformance::run_talkoff(&args),
        Command::Mask(args) => mask::run(args),
    }
}
