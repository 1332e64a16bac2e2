//! `tonegate check-config`: load a function file the way `serve` will, and say what it holds.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::ValueEnum;

use tonegate_control::config::MessageKind;
use tonegate_control::tools::{anthropic_tools, openai_tools};

pub(crate) fn run(args: CheckConfigArgs) -> ExitCode {
    let function = match tonegate::read_function(&args.file) {
        Ok(function) => function,
        Err(e) => {
            eprintln!("tonegate: {e}");
            return ExitCode::FAILURE;
        }
    };
    let connections: Vec<&str> = [
        Some("start"),
        function.connections.success.as_ref().map(|_| "success"),
        function.connections.failure.as_ref().map(|_| "failure"),
    ]
    .into_iter()
    .flatten()
    .collect();
    println!(
        "{}: ok: function `{}`, {} Set variables, connections: {}, retries per field {}, \
         inter-digit timeout {} s, first-key timeout {} s",
        args.file.display(),
        function.name,
        function.set_variables.len(),
        connections.join(", "),
        function.limits.per_field_retry_limit,
        function.limits.inter_digit_timeout_seconds,
        function.limits.first_key_timeout_seconds,
    );
    if args.messages {
        for kind in MessageKind::ALL {
            println!("{}: {}", kind.as_str(), function.message_template(kind));
        }
    }
    if let Some(format) = args.tools {
        let tools = match format {
            ToolsFormat::Openai => openai_tools(&function),
            ToolsFormat::Anthropic => anthropic_tools(&function),
        };
        println!(
            "{}",
            serde_json::to_string_pretty(&tools).expect("JSON values serialize")
        );
    }
    ExitCode::SUCCESS
}

/// Options of `tonegate check-config`.
#[derive(Debug, clap::Args)]
pub(crate) struct CheckConfigArgs {
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
