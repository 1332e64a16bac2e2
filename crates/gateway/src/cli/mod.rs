//! The binary's commands: each module is one command (`replay` and its WAV path `wav`,
//! `conformance` and `talkoff`, `check-config`, `serve`, `demo`, `mask`), with what they share here
//! (the replay arguments, output formats, how a failed command ends, the runtime).
//! Dependencies among them point one way: `replay -> wav -> output`, `conformance -> wav`.

pub(crate) mod check_config;
pub(crate) mod conformance;
pub(crate) mod demo;
pub(crate) mod mask;
pub(crate) mod output;
pub(crate) mod plot;
pub(crate) mod replay;
pub(crate) mod serve;
pub(crate) mod spandsp;
pub(crate) mod wav;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::ValueEnum;

/// Options of `tonegate replay`.
#[derive(Debug, clap::Args)]
pub(crate) struct ReplayArgs {
    /// The capture (pcap or pcapng; Ethernet, 802.1Q, Linux SLL/SLL2, raw IP; IPv4/IPv6) or a
    /// WAV file (8 kHz; 16-bit PCM, mu-law or A-law). Without one, the bundled fixture
    /// `fixtures/rfc4733/basic.pcap` is replayed.
    pub(crate) file: Option<PathBuf>,
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
    /// Print digit keys as they are. Without it digits print as `?` (`*`, `#`, `A`-`D` are
    /// always shown): a capture of a real payment holds card data.
    #[arg(long)]
    pub(crate) show_keys: bool,
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

/// How a command that failed with `err` ends: the error on stderr and status 1; or, when
/// stdout was closed under it (`tonegate replay big.pcap | head`), quietly with status 141,
/// as a shell reports a process ended by SIGPIPE.
pub(crate) fn failed(err: &anyhow::Error) -> ExitCode {
    let broken_pipe = err.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
    });
    if broken_pipe {
        return ExitCode::from(141);
    }
    eprintln!("tonegate: {err:#}");
    ExitCode::FAILURE
}

pub(crate) fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
}
