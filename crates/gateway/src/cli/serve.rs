//! `tonegate serve`: logging, tokens, the gateway until SIGTERM or Ctrl-C, graceful stop.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::ValueEnum;

use super::runtime;

/// Options of `tonegate serve`.
#[derive(Debug, clap::Args)]
pub(crate) struct ServeArgs {
    /// A YAML config file (see docs/serve.md).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Log format.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

/// Log output.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

pub(crate) fn run(args: ServeArgs) -> ExitCode {
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
