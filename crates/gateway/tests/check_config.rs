//! `tonegate check-config` on the example functions, on the examples in docs/config.md, and on
//! broken files.

mod common;

use common::{root, tonegate_command};

fn check(args: &[&str]) -> std::process::Output {
    tonegate_command()
        .arg("check-config")
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn the_example_functions_pass() {
    for file in [
        "examples/functions/minimal.yaml",
        "examples/functions/full.yaml",
        "examples/functions/full.toml",
    ] {
        let out = check(&[file]);
        assert!(
            out.status.success(),
            "{file}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            stdout.contains("ok: function `collect_payment`"),
            "{stdout}"
        );
    }
    let out = check(&["examples/functions/full.yaml", "--tools", "openai"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let json: serde_json::Value =
        serde_json::from_str(&stdout[stdout.find('[').unwrap()..]).unwrap();
    assert_eq!(json[1]["function"]["name"], "cancel_collect_payment");
}

#[test]
fn the_examples_in_the_config_reference_are_the_example_files() {
    let doc = std::fs::read_to_string(root().join("docs/config.md")).unwrap();
    for (file, fence) in [
        (
            "examples/functions/minimal.yaml",
            "```yaml title=examples/functions/minimal.yaml",
        ),
        (
            "examples/functions/full.yaml",
            "```yaml title=examples/functions/full.yaml",
        ),
        (
            "examples/functions/full.toml",
            "```toml title=examples/functions/full.toml",
        ),
    ] {
        let start = doc
            .find(fence)
            .unwrap_or_else(|| panic!("docs/config.md lacks {fence}"))
            + fence.len()
            + 1;
        let end = start + doc[start..].find("\n```").unwrap() + 1;
        let in_doc = &doc[start..end];
        let on_disk = std::fs::read_to_string(root().join(file)).unwrap();
        assert_eq!(
            in_doc, on_disk,
            "docs/config.md's copy of {file} is out of date"
        );
    }
}

#[test]
fn a_broken_file_is_refused_with_its_place_and_prints_nothing_on_stdout() {
    let dir = std::env::temp_dir().join(format!("tonegate-check-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("broken.yaml");
    std::fs::write(
        &file,
        "name: collect_payment\npurpose: p\nconnections:\n  start:\n    url: https://x.example/s\n    timout_ms: 5\n",
    )
    .unwrap();
    let out = check(&[file.to_str().unwrap()]);
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("broken.yaml:6:5"), "{stderr}");
    assert!(stderr.contains("unknown field `timout_ms`"), "{stderr}");
}

#[test]
fn a_missing_file_is_refused_naming_it() {
    let out = check(&["/nonexistent/f.yaml"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with("tonegate: /nonexistent/f.yaml: cannot read the file: "),
        "{stderr}"
    );
}

#[test]
fn the_default_messages_in_the_reference_are_the_ones_in_use() {
    let doc = std::fs::read_to_string(root().join("docs/config.md")).unwrap();
    let out = check(&["examples/functions/minimal.yaml", "--messages"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let mut lines = stdout.lines();
    lines.next(); // the summary line
    let mut n = 0;
    for line in lines {
        assert!(
            doc.contains(line),
            "docs/config.md lacks the default `{line}`"
        );
        n += 1;
    }
    assert_eq!(n, 12);
}
