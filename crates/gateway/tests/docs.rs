//! The documentation cites files by path (`crates/pci/src/secret.rs`, `src/outcome.rs` in a
//! crate's guide, `scripts/test.sh`, `fixtures/...`); an assessor follows them. This test fails
//! when a cited file moves or goes, so the docs cannot silently point at nothing.

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Backticked spans that look like paths to files of this repository.
fn cited_paths(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for span in text.split('`').skip(1).step_by(2) {
        // `file.rs::test_name` and `file.rs:12` cite a file too.
        let path = span.split("::").next().unwrap_or(span);
        let path = path.split(':').next().unwrap_or(path);
        let known_root = [
            "crates/",
            "src/",
            "tests/",
            "scripts/",
            "fixtures/",
            "docs/",
            "tools/",
            "examples/",
        ]
        .iter()
        .any(|p| path.starts_with(p));
        let has_extension = Path::new(path).extension().is_some_and(|e| {
            [
                "rs", "md", "sh", "py", "toml", "yaml", "c", "pcap", "wav", "json",
            ]
            .contains(&e.to_str().unwrap_or(""))
        });
        if known_root
            && has_extension
            && !path.contains(['*', ' ', '<', '{', '$', '…'])
            && !path.contains("...")
        {
            out.push(path.to_owned());
        }
    }
    out
}

#[test]
fn every_file_the_docs_cite_exists() {
    let root = root();
    let crates: Vec<PathBuf> = std::fs::read_dir(root.join("crates"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    let mut docs: Vec<PathBuf> = std::fs::read_dir(root.join("docs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    docs.push(root.join("README.md"));
    let mut missing = Vec::new();
    let mut checked = 0;
    for doc in &docs {
        let text = std::fs::read_to_string(doc).unwrap();
        for path in cited_paths(&text) {
            checked += 1;
            // A path is from the repository's root, or (in a crate's guide: `src/...`,
            // `tests/...`) from one of the crates.
            let found = root.join(&path).exists() || crates.iter().any(|c| c.join(&path).exists());
            // Files the scripts generate under target/ are not cited with these roots.
            if !found {
                missing.push(format!(
                    "{}: `{path}`",
                    doc.file_name().unwrap().to_string_lossy()
                ));
            }
        }
    }
    assert!(checked > 50, "the docs cite files ({checked} found)");
    assert!(
        missing.is_empty(),
        "cited files that do not exist:\n{}",
        missing.join("\n")
    );
}
