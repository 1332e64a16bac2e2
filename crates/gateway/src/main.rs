//! `tonegate`: the DTMF gateway for secure voice payments.
//!
//! `replay` reads a pcap or pcapng capture and prints the caller's key presses decoded from
//! RFC 4733 telephone-events; `check-config` validates a voice payment function file. `serve`
//! and `demo` come with later issues.

mod check_config;
mod replay;

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
    /// Check a voice payment function file (YAML, or TOML for `.toml`) and summarise it.
    ///
    /// Exit status 0 when the file is valid, 1 with the file, line and column of the first
    /// problem otherwise.
    CheckConfig(CheckConfigArgs),
}

/// Options of `tonegate check-config`.
#[derive(Debug, clap::Args)]
struct CheckConfigArgs {
    /// The function file.
    file: PathBuf,
    /// Also print the function as LLM tool definitions.
    #[arg(long, value_enum)]
    tools: Option<ToolsFormat>,
    /// Also print every message template in use (the file's, or the default).
    #[arg(long)]
    messages: bool,
}

/// Tool-definition shapes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum ToolsFormat {
    /// OpenAI-style `{"type": "function", "function": {...}}`.
    Openai,
    /// Anthropic-style `{"name", "description", "input_schema"}`.
    Anthropic,
}

/// Options of `tonegate replay`.
#[derive(Debug, clap::Args)]
struct ReplayArgs {
    /// The capture (pcap or pcapng; Ethernet, 802.1Q, Linux SLL/SLL2, raw IP; IPv4/IPv6).
    /// Without one, the bundled fixture `fixtures/rfc4733/basic.pcap` is replayed.
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
}

/// How results are printed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Format {
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
        Command::CheckConfig(args) => check_config::run(args),
    }
}
