//! `tonegate`: the DTMF gateway for secure voice payments.
//!
//! `replay` reads a pcap or pcapng capture (RFC 4733 telephone-events and in-band tones in
//! PCMU/PCMA/L16 audio) or a WAV file (in-band tones) and prints the caller's key presses.
//! `conformance` and `talkoff` measure the in-band detector against ITU-T Q.24 and real audio,
//! side by side with spandsp when its harness is built. `serve` and `demo` come later.

mod conformance;
mod plot;
mod replay;
mod spandsp;
mod wav;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

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
    Replay(ReplayArgs),
    /// Run the in-band detector over the Q.24 conformance WAVs and print a table (tonegate and,
    /// when its harness is built, spandsp side by side). Exit status 1 if a tonegate row fails.
    Conformance(conformance::ConformanceArgs),
    /// Count false key presses on audio that holds no DTMF (speech, music), per hour, for
    /// tonegate and spandsp.
    Talkoff(conformance::TalkoffArgs),
}

/// Options of `tonegate replay`.
#[derive(Debug, clap::Args)]
pub(crate) struct ReplayArgs {
    /// The capture (pcap or pcapng; Ethernet, 802.1Q, Linux SLL/SLL2, raw IP; IPv4/IPv6) or a
    /// WAV file (8 kHz; 16-bit PCM, mu-law or A-law). Without one, the bundled fixture
    /// `fixtures/rfc4733/basic.pcap` is replayed.
    file: Option<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
    /// Telephone-event payload type (repeatable). Default 101, plus any found in SDP.
    #[arg(long = "event-pt", value_name = "PT", value_parser = clap::value_parser!(u8).range(0..=127))]
    event_pt: Vec<u8>,
    /// RFC 2198 red payload type carrying telephone-events (repeatable).
    #[arg(long = "red-pt", value_name = "PT", value_parser = clap::value_parser!(u8).range(0..=127))]
    red_pt: Vec<u8>,
    /// An SDP file whose `a=rtpmap:N telephone-event/RATE` and `red` lines give payload types.
    #[arg(long, value_name = "FILE")]
    sdp: Option<PathBuf>,
    /// UDP port carrying RTP (repeatable). Default: find RTP streams heuristically.
    #[arg(long, value_name = "PORT")]
    port: Vec<u16>,
    /// Media time after which a press whose end packets were lost is ended, in ms.
    #[arg(long, value_name = "MS", default_value_t = 250.0)]
    end_timeout_ms: f64,
    /// WAV only: the channel to listen to, from 0 (default: the first).
    #[arg(long, value_name = "N", default_value_t = 0)]
    channel: u16,
    /// Captures: do not decode audio for in-band DTMF (RFC 4733 events only).
    #[arg(long)]
    no_inband: bool,
    /// Captures: payload type carrying L16/8000 mono audio (repeatable).
    #[arg(long = "l16-pt", value_name = "PT", value_parser = clap::value_parser!(u8).range(0..=127))]
    l16_pt: Vec<u8>,
    /// WAV only: draw the eight band levels over time with each detected press marked, as PNG.
    #[arg(long, value_name = "FILE.png")]
    plot: Option<PathBuf>,
}

/// How results are printed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum Format {
    /// One line per press, aligned for reading, then a summary per stream.
    Text,
    /// One JSON object per line: presses (with a `key` field), then summaries (with a
    /// `summary` field and no `key`).
    Json,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Replay(args) => replay::run(args),
        Command::Conformance(args) => conformance::run_conformance(&args),
        Command::Talkoff(args) => conformance::run_talkoff(&args),
    }
}
