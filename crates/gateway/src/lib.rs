//! The `tonegate` gateway: the only crate with sockets, tasks and clocks. Its library holds
//! what the binary's commands share and what the tests drive directly; `main.rs` is the CLI.

#![forbid(unsafe_code)]

pub mod connection;
pub mod metrics;
pub mod ng;
pub mod outbox;
pub mod panic_hook;
pub mod sdp;
pub mod serve;

use std::path::Path;

use tonegate_control::config::{ConfigError, Format, Function};
use tonegate_media::goertzel::Kernel;
use tonegate_media::inband::InbandConfig;

/// Reads and loads a voice payment function file: TOML for `.toml`, YAML otherwise
/// (`tonegate-control` takes the text; the file is read here). An unreadable file is a
/// [`ConfigError`] naming it, like any other mistake in it.
pub fn read_function(path: &Path) -> Result<Function, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError::unreadable(path, &e))?;
    Function::from_str(&text, Format::from_path(path), path)
}

/// The in-band detector settings of this process's commands: the defaults, with the Goertzel
/// kernel `TONEGATE_INBAND_KERNEL` names (`portable`, or `auto`: the fastest this CPU runs; the
/// default). The kernel is part of each detector's configuration, not process state. An
/// unknown value is an error naming the two.
pub fn inband_config_from_env() -> anyhow::Result<InbandConfig> {
    let kernel = match std::env::var("TONEGATE_INBAND_KERNEL").as_deref() {
        Err(_) | Ok("" | "auto") => Kernel::detect(),
        Ok("portable") => Kernel::Portable,
        Ok(other) => anyhow::bail!("TONEGATE_INBAND_KERNEL `{other}`: use portable or auto"),
    };
    Ok(InbandConfig {
        kernel,
        ..InbandConfig::default()
    })
}
