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
        let mut generated = Vec::new();
        for (tokens, name) in [
            (&mut config.telephony_tokens, "telephony"),
            (&mut config.agent_tokens, "agent"),
        ] {
            if tokens.is_empty() {
                let token = format!("{name}-{:032x}", rand::random::<u128>());
                generated.push(format!("TONEGATE_{}_TOKEN={token}\n", name.to_uppercase()));
                tokens.push(token);
            }
        }
        if !generated.is_empty() {
            // A bearer token is a credential: it goes to a file only its owner can read, not
            // to the log.
            let path = config.data_dir.join("generated-tokens.env");
            write_private(&path, &generated.concat())?;
            tracing::warn!(
                path = %path.display(),
                "no telephony or agent token configured: generated tokens written to the file (set TONEGATE_TELEPHONY_TOKEN and TONEGATE_AGENT_TOKEN)"
            );
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

/// Writes `text` to `path` (and its directory) readable by its owner only.
fn write_private(path: &std::path::Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", dir.display()))?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(path)
        .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
    file.write_all(text.as_bytes())
        .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
    Ok(())
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
