//! Every fixture under `fixtures/` replayed through the real `tonegate replay` binary, checked
//! against its manifest (which `scripts/tshark_presses.py --check` checks against tshark).

mod common;

use std::path::PathBuf;
use std::process::Output;

use common::{root, tonegate};
use serde::Deserialize;
use serde_json::Value;

#[derive(Debug, Deserialize)]
struct Manifest {
    fixture: Vec<Fixture>,
}

#[derive(Debug, Deserialize)]
struct Fixture {
    file: String,
    #[serde(default)]
    args: Vec<String>,
    keys: String,
    starts_ms: Option<Vec<f64>>,
    durations_ms: Option<Vec<f64>>,
    #[serde(default)]
    expect_error: String,
}

fn json_lines(stdout: &[u8]) -> Vec<Value> {
    String::from_utf8_lossy(stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

fn manifests() -> Vec<(PathBuf, Manifest)> {
    let mut found = Vec::new();
    for dir in std::fs::read_dir(root().join("fixtures")).unwrap() {
        let dir = dir.unwrap().path();
        // fixtures/inband holds WAVs with their own manifest shape, run by `tonegate
        // conformance` (tests/inband.rs); this file checks the captures.
        if dir.ends_with("inband") {
            continue;
        }
        let path = dir.join("manifest.toml");
        if path.exists() {
            let text = std::fs::read_to_string(&path).unwrap();
            let manifest: Manifest =
                toml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            found.push((path.parent().unwrap().to_path_buf(), manifest));
        }
    }
    found.sort_by(|a, b| a.0.cmp(&b.0));
    assert!(found.len() >= 4, "fixture manifests are missing");
    found
}

#[test]
fn every_fixture_gives_the_presses_its_manifest_lists() {
    let mut checked = 0;
    let mut failures = Vec::new();
    for (dir, manifest) in manifests() {
        for fx in &manifest.fixture {
            let file = dir.join(&fx.file);
            let mut args = vec!["replay", file.to_str().unwrap(), "--format", "json"];
            args.extend(fx.args.iter().map(String::as_str));
            let out = tonegate(&args);
            let stderr = String::from_utf8_lossy(&out.stderr);
            let name = format!("{}/{}", dir.file_name().unwrap().to_string_lossy(), fx.file);
            if fx.expect_error.is_empty() {
                if !out.status.success() {
                    failures.push(format!("{name}: failed: {stderr}"));
                    continue;
                }
            } else {
                if out.status.success() {
                    failures.push(format!("{name}: succeeded, expected `{}`", fx.expect_error));
                }
                if !stderr.contains(&fx.expect_error) {
                    failures.push(format!(
                        "{name}: stderr does not say `{}`: {stderr}",
                        fx.expect_error
                    ));
                }
            }
            let mut presses: Vec<(f64, char, f64)> = json_lines(&out.stdout)
                .into_iter()
                .filter(|v| v.get("key").is_some())
                .map(|v| {
                    assert_eq!(v["source"], "rfc4733");
                    (
                        v["start_ms"].as_f64().unwrap(),
                        v["key"].as_str().unwrap().chars().next().unwrap(),
                        v["duration_ms"].as_f64().unwrap(),
                    )
                })
                .collect();
            presses.sort_by(|a, b| a.0.total_cmp(&b.0));
            let keys: String = presses.iter().map(|p| p.1).collect();
            if keys != fx.keys {
                failures.push(format!("{name}: keys {keys:?}, manifest {:?}", fx.keys));
                continue;
            }
            let close = |got: &[f64], want: &[f64]| {
                got.len() == want.len() && got.iter().zip(want).all(|(g, w)| (g - w).abs() < 0.5)
            };
            let starts: Vec<f64> = presses.iter().map(|p| p.0).collect();
            if let Some(want) = &fx.starts_ms {
                if !close(&starts, want) {
                    failures.push(format!("{name}: starts {starts:?}, manifest {want:?}"));
                }
            }
            let durations: Vec<f64> = presses.iter().map(|p| p.2).collect();
            if let Some(want) = &fx.durations_ms {
                if !close(&durations, want) {
                    failures.push(format!(
                        "{name}: durations {durations:?}, manifest {want:?}"
                    ));
                }
            }
            checked += 1;
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
    assert!(checked >= 30, "only {checked} fixtures checked");
}

#[test]
fn json_lines_keep_their_documented_field_names() {
    let out = tonegate(&["replay", "fixtures/rfc4733/basic.pcap", "--format", "json"]);
    assert!(out.status.success());
    let lines = json_lines(&out.stdout);
    let press = &lines[0];
    for field in ["stream", "key", "start_ms", "duration_ms", "source"] {
        assert!(
            press.get(field).is_some(),
            "press line lacks {field}: {press}"
        );
    }
    assert_eq!(press["key"], "4");
    assert_eq!(press["start_ms"], 120.0);
    assert_eq!(press["duration_ms"], 100.0);
    assert_eq!(press["volume_dbm0"], -10);
    let summary = lines.last().unwrap();
    assert_eq!(summary["summary"], "stream");
    assert!(
        summary.get("key").is_none(),
        "a summary must not look like a press"
    );
    assert_eq!(summary["key_presses"], 4);
    assert_eq!(summary["packets"], 56);
    assert_eq!(summary["lost"], 0);
    assert_eq!(summary["payload_types"], serde_json::json!([0, 101]));
}

#[test]
fn without_a_file_the_bundled_fixture_is_replayed() {
    let out = tonegate(&["replay"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    let keys: String = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            l.split_once(" key ")
                .map(|(_, rest)| rest.chars().next().unwrap())
        })
        .collect();
    assert_eq!(keys, "4111");
}

#[test]
fn failures_print_nothing_that_looks_like_a_result() {
    for (args, says) in [
        (
            vec!["replay", "fixtures/does-not-exist.pcap"],
            "cannot open capture",
        ),
        (
            vec!["replay", "fixtures/bad/not-a-capture.pcap"],
            "not a pcap",
        ),
        (vec!["replay", "fixtures/bad/no-rtp.pcap"], "--port"),
        (
            vec![
                "replay",
                "fixtures/rfc4733/basic.pcap",
                "--sdp",
                "Cargo.toml",
            ],
            "telephone-event",
        ),
    ] {
        let out = tonegate(&args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert!(out.stdout.is_empty(), "{args:?} printed {:?}", out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(says), "{args:?}: {stderr}");
    }
}

#[test]
fn a_damaged_capture_reports_what_came_before_and_where_it_stopped() {
    let out = tonegate(&["replay", "fixtures/bad/truncated.pcap", "--format", "json"]);
    assert_eq!(out.status.code(), Some(3));
    let keys: String = json_lines(&out.stdout)
        .iter()
        .filter_map(|v| v["key"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(keys, "41");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("frame 26 at byte 3590"), "{stderr}");
}

#[test]
fn payload_types_come_from_an_sdp_file_or_the_command_line() {
    let sdp = std::env::temp_dir().join(format!("tonegate-test-{}.sdp", std::process::id()));
    std::fs::write(
        &sdp,
        "v=0\r\nm=audio 50000 RTP/AVP 0 96\r\na=rtpmap:96 telephone-event/8000\r\n",
    )
    .unwrap();
    let with_sdp = tonegate(&[
        "replay",
        "fixtures/rfc4733/pt-96.pcap",
        "--sdp",
        sdp.to_str().unwrap(),
    ]);
    std::fs::remove_file(&sdp).unwrap();
    let without = tonegate(&["replay", "fixtures/rfc4733/pt-96.pcap"]);
    let count = |o: &Output| {
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .filter(|l| !l.starts_with('#') && l.contains(" key "))
            .count()
    };
    assert_eq!(count(&with_sdp), 2);
    assert_eq!(count(&without), 0);
}

#[test]
fn rtp_on_a_named_port_is_found_without_the_heuristic() {
    let out = tonegate(&[
        "replay",
        "fixtures/rfc4733/basic.pcap",
        "--port",
        "50000",
        "--format",
        "json",
    ]);
    let presses = json_lines(&out.stdout)
        .iter()
        .filter(|v| v.get("key").is_some())
        .count();
    assert_eq!(presses, 4);
    let out = tonegate(&["replay", "fixtures/rfc4733/basic.pcap", "--port", "5060"]);
    assert_eq!(out.status.code(), Some(1), "no RTP on port 5060");
}

/// A capture of a real payment holds the card as key presses: `replay` prints digits as `?`
/// unless `--show-keys` is given, in text and JSON, for captures and WAVs; `*`, `#` and
/// `A`-`D` are shown either way.
#[test]
fn digits_are_masked_unless_asked_for() {
    for (file, shown) in [
        ("fixtures/rfc4733/basic.pcap", "4111"),
        ("fixtures/inband/nominal.wav", ""),
    ] {
        for format in ["text", "json"] {
            let out = common::tonegate_command()
                .args(["replay", file, "--format", format])
                .output()
                .expect("tonegate runs");
            assert!(out.status.success());
            let text = String::from_utf8_lossy(&out.stdout);
            let keys: Vec<&str> = text
                .lines()
                .filter_map(|l| {
                    l.split_once("key ")
                        .map(|(_, k)| &k[..1])
                        .or_else(|| l.split_once("\"key\":\"").map(|(_, k)| &k[..1]))
                })
                .collect();
            assert!(!keys.is_empty(), "{file} {format}: {text}");
            assert!(
                keys.iter().all(|k| !k.chars().all(|c| c.is_ascii_digit())),
                "{file} {format}: a digit printed: {keys:?}"
            );
            let shown_out = tonegate(&["replay", file, "--format", format]);
            let revealed = String::from_utf8_lossy(&shown_out.stdout);
            for digit in shown.chars() {
                assert!(
                    revealed.contains(&format!("key {digit}"))
                        || revealed.contains(&format!("\"key\":\"{digit}\""))
                );
            }
        }
    }
}
