//! `tonegate`: the DTMF gateway for secure voice payments.
//!
//! `replay` reads a pcap or pcapng capture (RFC 4733 telephone-events and in-band tones in
//! PCMU/PCMA/L16 audio) or a WAV file (in-band tones) and prints the caller's key presses.
//! `conformance` and `talkoff` measure the in-band detector against ITU-T Q.24 and real audio,
//! side by side with spandsp when its harness is built. `check-config` validates a voice
//! payment function file; `serve` runs the gateway and `demo` shows it end to end.

mod check_config;
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
    /// Check a voice payment function file (YAML, or TOML for `.toml`) and summarise it.
    ///
    /// Exit status 0 when the file is valid, 1 with the file, line and column of the first
    /// problem otherwise.
    CheckConfig(CheckConfigArgs),
    /// Run the gateway: calls over UDP/RTP, the telephony and agent HTTP APIs, connections.
    ///
    /// Works with no arguments on built-in defaults (sandbox processor, the example function,
    /// 127.0.0.1:8080); `--config FILE` and `TONEGATE_*` environment variables override them.
    Serve(ServeArgs),
    /// One command that shows the whole product: starts the gateway, stand-ins for the
    /// customer's endpoints and a caller sending RTP key presses over 127.0.0.1, and prints
    /// what the agent side sees and what the endpoints receive.
    Demo(DemoArgs),
    /// Run the in-band detector over the Q.24 conformance WAVs and print a table (tonegate and,
    /// when its harness is built, spandsp side by side). Exit status 1 if a tonegate row fails.
    Conformance(conformance::ConformanceArgs),
    /// Count false key presses on audio that holds no DTMF (speech, music), per hour, for
    /// tonegate and spandsp.
    Talkoff(conformance::TalkoffArgs),
}

/// Options of `tonegate serve`.
#[derive(Debug, clap::Args)]
struct ServeArgs {
    /// A YAML config file (see docs/serve.md).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Log format.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

/// Options of `tonegate demo`.
#[derive(Debug, clap::Args)]
struct DemoArgs {
    /// The card the caller types (a sandbox test card decides the outcome).
    #[arg(long, default_value = "4242424242424242")]
    card: String,
    /// Milliseconds between RTP packets (20 is real time).
    #[arg(long, default_value_t = 20)]
    pace_ms: u64,
    /// Send the keys as in-band tones in the audio instead of RFC 4733 telephone-events.
    #[arg(long)]
    inband: bool,
}

/// Log output.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
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
    if let Err(e) = tonegate::inband_config_from_env() {
        eprintln!("tonegate: {e:#}");
        return ExitCode::FAILURE;
    }
    match cli.command {
        Command::Replay(args) => replay::run(args),
        Command::CheckConfig(args) => check_config::run(args),
        Command::Serve(args) => serve(args),
        Command::Demo(args) => demo(args),
        Command::Conformance(args) => conformance::run_conformance(&args),
        Command::Talkoff(args) => conformance::run_talkoff(&args),
    }
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

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

fn serve(args: ServeArgs) -> ExitCode {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Logs go to stderr; colours only when it is a terminal.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    match args.log_format {
        LogFormat::Text => tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .with_ansi(ansi)
            .init(),
        LogFormat::Json => tracing_subscriber::fmt()
            .json()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .init(),
    }
    let result = runtime().block_on(async {
        let mut config = tonegate::serve::ServeConfig::load(args.config.as_deref())?;
        for (tokens, name) in [
            (&mut config.telephony_tokens, "telephony"),
            (&mut config.agent_tokens, "agent"),
        ] {
            if tokens.is_empty() {
                let token = format!("{name}-{:016x}", rand_token());
                tracing::warn!(
                    "no {name} token configured: using {token} (set TONEGATE_{}_TOKEN)",
                    name.to_uppercase()
                );
                tokens.push(token);
            }
        }
        let running = tonegate::serve::Gateway::start(config, None).await?;
        shutdown_signal().await;
        tracing::info!("shutting down");
        running.stop().await;
        anyhow::Ok(())
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tonegate: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// A token nobody can guess from the outside: the clock and the process id, hashed.
fn rand_token() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.write_u32(std::process::id());
    h.finish()
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("a SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

fn demo(args: DemoArgs) -> ExitCode {
    let pace = std::time::Duration::from_millis(args.pace_ms);
    match runtime().block_on(tonegate::demo::run(&args.card, pace, args.inband)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tonegate demo: {e:#}");
            ExitCode::FAILURE
        }
    }
}
