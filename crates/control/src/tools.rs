//! The function as tool definitions for the agent's LLM: an OpenAI-style `function` tool and an
//! Anthropic-style tool, each with the companion cancel tool that is available whenever a
//! payment session is active.

use serde_json::{json, Value};

use crate::config::Function;

/// The cancel tool's name for `function` (`cancel_collect_payment`).
pub fn cancel_tool_name(function: &Function) -> String {
    format!("cancel_{}", function.name)
}

const CANCEL_DESCRIPTION: &str = "Cancel the active payment session without charging. Use when \
the caller asks to stop or no longer wants to pay.";

/// `[{"type": "function", "function": {name, description, parameters}}, cancel]` as the OpenAI
/// chat-completions and responses APIs take them.
pub fn openai_tools(function: &Function) -> Value {
    json!([
        {
            "type": "function",
            "function": {
                "name": function.name,
                "description": function.purpose,
                "parameters": function.input_schema,
            }
        },
        {
            "type": "function",
            "function": {
                "name": cancel_tool_name(function),
                "description": CANCEL_DESCRIPTION,
                "parameters": {"type": "object", "properties": {}},
            }
        }
    ])
}

/// `[{name, description, input_schema}, cancel]` as the Anthropic Messages API takes them.
pub fn anthropic_tools(function: &Function) -> Value {
    json!([
        {
            "name": function.name,
            "description": function.purpose,
            "input_schema": function.input_schema,
        },
        {
            "name": cancel_tool_name(function),
            "description": CANCEL_DESCRIPTION,
            "input_schema": {"type": "object", "properties": {}},
        }
    ])
}
