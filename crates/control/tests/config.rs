//! Loading functions: the examples load, and every kind of mistake is refused with its place.

use std::path::{Path, PathBuf};

use serde_json::json;
use tonegate_control::config::{ConfigError, Format, Function, SetVariable};
use tonegate_control::tools::{anthropic_tools, openai_tools};
use tonegate_pci::StarKey;

fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples/functions")
        .join(name)
}

/// Reads a function file the way the gateway does (this crate reads no file itself).
fn from_path(path: &Path) -> Result<Function, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError::unreadable(path, &e))?;
    Function::from_str(&text, Format::from_path(path), path)
}

fn load_yaml(text: &str) -> Result<Function, String> {
    Function::from_str(text, Format::Yaml, Path::new("f.yaml")).map_err(|e| e.to_string())
}

const MINIMAL: &str = "name: collect_payment\npurpose: Collect a payment\nconnections:\n  start:\n    url: https://x.example/start\n";

#[test]
fn the_examples_load_in_both_formats() {
    let minimal = from_path(&example("minimal.yaml")).unwrap();
    assert_eq!(minimal.name, "collect_payment");
    assert_eq!(minimal.limits.per_field_retry_limit, 3);
    assert!(minimal.connections.success.is_none());

    let full = from_path(&example("full.yaml")).unwrap();
    assert_eq!(full.connections.start.timeout_ms, 3000);
    assert_eq!(full.connections.start.retries, Some(1));
    // A string is a template (plain text renders to itself); other values are static.
    assert_eq!(
        full.set_variables["channel"],
        SetVariable::Template("voice".into())
    );
    assert_eq!(
        full.set_variables["attempt_limit"],
        SetVariable::Static(json!(3))
    );
    assert!(full
        .validate_params(&json!({"cardholder_name": "Ada"}))
        .is_ok());
    let errors = full
        .validate_params(&json!({"billing_address": 7}))
        .unwrap_err();
    assert!(
        errors.iter().any(|e| e.contains("cardholder_name")),
        "{errors:?}"
    );
    assert!(
        errors.iter().any(|e| e.contains("/billing_address")),
        "{errors:?}"
    );

    let toml = from_path(&example("full.toml")).unwrap();
    assert_eq!(toml.limits.per_field_retry_limit, 2);
    assert_eq!(toml.limits.inter_digit_timeout_seconds, 4.5);
    assert_eq!(toml.limits.star_key, StarKey::CancelSession);
}

#[test]
fn mistakes_are_refused_with_the_file_the_line_and_what_is_wrong() {
    let cases: Vec<(String, &str)> = vec![
        (
            format!("{MINIMAL}colour: blue\n"),
            "f.yaml:6:1: unknown field `colour`",
        ),
        (
            MINIMAL.replace(
                "connections:\n  start:\n    url: https://x.example/start\n",
                "connections: {}\n",
            ),
            "missing field `start`",
        ),
        (
            MINIMAL.replace("https://x.example/start", "not a url"),
            "f.yaml:5:5: connections.start.url `not a url`",
        ),
        (
            MINIMAL.replace("https://x.example/start", "ftp://x.example/start"),
            "scheme `ftp` is not http or https",
        ),
        (
            MINIMAL.replace("collect_payment", "Collect-Payment"),
            "f.yaml:1:1: name `Collect-Payment`",
        ),
        (
            format!("{MINIMAL}messages:\n  credit_card: 'Enter {{% if %}}'\n"),
            "f.yaml:7:3: messages.credit_card: bad template",
        ),
        (
            format!("{MINIMAL}messages:\n  goodbye: bye\n"),
            "unknown message `goodbye`",
        ),
        (
            format!("{MINIMAL}set_variables:\n  order: '{{{{ vars.get(\"order\") '\n"),
            "f.yaml:7:3: set_variables.order: bad template",
        ),
        (
            format!(
                "{MINIMAL}input_schema:\n  type: object\n  properties:\n    x:\n      type: 12\n"
            ),
            "input_schema is not a valid JSON Schema",
        ),
        (
            format!("{MINIMAL}input_schema:\n  type: string\n"),
            "must describe an object",
        ),
        (
            format!("{MINIMAL}limits:\n  inter_digit_timeout_seconds: 0\n"),
            "limits.inter_digit_timeout_seconds must be more than 0",
        ),
        (
            format!("{MINIMAL}limits:\n  per_field_retry_limit: -1\n"),
            "per_field_retry_limit",
        ),
        (
            format!("{MINIMAL}limits:\n  star_key: hangup\n"),
            "unknown variant `hangup`",
        ),
        ("name: [unclosed\n".to_owned(), "f.yaml:1:"),
    ];
    for (text, says) in cases {
        let err = load_yaml(&text)
            .err()
            .unwrap_or_else(|| panic!("accepted:\n{text}"));
        assert!(
            err.contains(says),
            "expected `{says}` in `{err}`\nfor:\n{text}"
        );
    }
    let err = Function::from_str("name = 3\n", Format::Toml, Path::new("f.toml"))
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("f.toml:1:"), "{err}");
    let missing = from_path(Path::new("/nonexistent/f.yaml")).unwrap_err();
    assert!(missing.to_string().contains("cannot read the file"));
    assert_eq!(Format::from_path(Path::new("f.toml")), Format::Toml);
    assert_eq!(Format::from_path(Path::new("dir.toml/f.yml")), Format::Yaml);
    assert_eq!(Format::from_path(Path::new("f")), Format::Yaml);
}

#[test]
fn tool_definitions_follow_both_llm_apis() {
    let function = from_path(&example("full.yaml")).unwrap();
    let openai = openai_tools(&function);
    assert_eq!(openai[0]["type"], "function");
    assert_eq!(openai[0]["function"]["name"], "collect_payment");
    assert_eq!(
        openai[0]["function"]["parameters"]["required"],
        json!(["cardholder_name"])
    );
    assert_eq!(openai[1]["function"]["name"], "cancel_collect_payment");
    let anthropic = anthropic_tools(&function);
    assert_eq!(anthropic[0]["name"], "collect_payment");
    assert!(anthropic[0]["description"]
        .as_str()
        .unwrap()
        .starts_with("Collects a card"));
    assert_eq!(anthropic[0]["input_schema"]["type"], "object");
    assert_eq!(
        anthropic[1]["input_schema"],
        json!({"type": "object", "properties": {}})
    );
}
