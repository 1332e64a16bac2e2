//! `tonegate replay FILE.wav`, `tonegate conformance` and `tonegate talkoff` from outside.
//!
//! The spandsp side and the short talk-off run need Debian packages (libspandsp-dev,
//! asterisk-core-sounds-en-wav, asterisk-moh-opsound-wav) that scripts/test.sh installs; it
//! sets TONEGATE_REQUIRE_SPANDSP=1 and TONEGATE_REQUIRE_TALKOFF=1 so that their absence fails
//! CI instead of skipping silently.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{root, tonegate, tonegate_command};

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn required(var: &str) -> bool {
    std::env::var_os(var).is_some_and(|v| v == "1")
}

#[test]
fn a_wav_replays_as_json_with_the_rfc4733_field_names_and_source_inband() {
    let o = tonegate(&["replay", "fixtures/inband/nominal.wav", "--format", "json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let lines: Vec<serde_json::Value> = stdout(&o)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let keys: String = lines
        .iter()
        .filter_map(|v| v.get("key").and_then(|k| k.as_str()))
        .collect();
    assert_eq!(keys, "123A456B789C*0#D");
    for field in [
        "stream",
        "ssrc",
        "key",
        "start_ms",
        "duration_ms",
        "volume_dbm0",
        "source",
        "ending",
    ] {
        assert!(lines[0].get(field).is_some(), "press lacks {field}");
    }
    assert_eq!(lines[0]["source"], "inband");
    assert_eq!(lines[0]["ending"], "tone-end");
    assert!(lines[0]["twist_db"].is_number() && lines[0]["low_dbm0"].is_number());
    let summary = lines.last().unwrap();
    assert_eq!(summary["summary"], "wav");
    assert_eq!(summary["key_presses"], 16);
    assert_eq!(summary["encoding"], "mu-law");
}

#[test]
fn a_wav_replays_as_text_and_draws_a_timeline() {
    let png = std::env::temp_dir().join(format!("tonegate-plot-{}.png", std::process::id()));
    let o = tonegate(&[
        "replay",
        "fixtures/inband/pause-40ms.wav",
        "--plot",
        png.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    assert_eq!(
        text.lines()
            .filter(|l| !l.starts_with('#') && l.contains(" key "))
            .count(),
        32
    );
    assert!(text.contains("32 key presses"));
    let bytes = std::fs::read(&png).expect("png written");
    let _ = std::fs::remove_file(&png);
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
    assert!(bytes.len() > 10_000, "a picture, not an empty frame");
}

fn write_temp(name: &str, bytes: &[u8]) -> PathBuf {
    let p = std::env::temp_dir().join(format!("tonegate-{}-{name}", std::process::id()));
    std::fs::write(&p, bytes).unwrap();
    p
}

#[test]
fn bad_wav_input_gets_a_clear_error_and_exit_1() {
    let good = std::fs::read(root().join("fixtures/inband/nominal.wav")).unwrap();
    let mut rate = good.clone();
    rate[24..28].copy_from_slice(&44100u32.to_le_bytes());
    let mut format = good.clone();
    format[20..22].copy_from_slice(&0x55u16.to_le_bytes()); // MP3 in WAV
    let truncated = &good[..good.len() / 2];
    let cases: [(&str, &[u8], &[&str], &str); 4] = [
        (
            "rate.wav",
            &rate,
            &[],
            "sample rate 44100 Hz is not supported",
        ),
        (
            "format.wav",
            &format,
            &[],
            "unsupported WAV format tag 0x0055",
        ),
        ("truncated.wav", truncated, &[], "truncated"),
        (
            "channel.wav",
            &good,
            &["--channel", "1"],
            "channel 1 does not exist: the file has 1 channel",
        ),
    ];
    for (name, bytes, extra, want) in cases {
        let path = write_temp(name, bytes);
        let mut args = vec!["replay", path.to_str().unwrap()];
        args.extend_from_slice(extra);
        let o = tonegate(&args);
        let _ = std::fs::remove_file(&path);
        assert_eq!(o.status.code(), Some(1), "{name}");
        assert!(stdout(&o).is_empty(), "{name}: nothing on stdout");
        assert!(stderr(&o).contains(want), "{name}: {}", stderr(&o));
    }
}

#[test]
fn conformance_passes_every_q24_row_and_runs_spandsp_beside_it() {
    let mut args = vec!["conformance"];
    if required("TONEGATE_REQUIRE_SPANDSP") {
        args.push("--require-spandsp");
    }
    let o = tonegate(&args);
    let table = stdout(&o);
    assert!(o.status.success(), "{table}{}", stderr(&o));
    let rows = table
        .lines()
        .filter(|l| l.starts_with("| ") && !l.starts_with("| condition"))
        .count();
    assert_eq!(rows, 20, "{table}");
    let summary = table
        .lines()
        .find(|l| l.starts_with("tonegate ("))
        .unwrap_or_else(|| panic!("no summary line: {table}"));
    assert!(summary.contains(" kernel) passes 20 of 20 rows"), "{table}");
    if required("TONEGATE_REQUIRE_SPANDSP") {
        assert!(table.contains("spandsp 0.0.6"), "{table}");
    }
}

#[test]
fn conformance_passes_every_q24_row_with_the_portable_kernel_too() {
    // The machine's fastest kernel (AVX2 + FMA here) runs everywhere else; this is the one
    // a CPU without them gets.
    let o = tonegate_command()
        .arg("conformance")
        .env("TONEGATE_INBAND_KERNEL", "portable")
        .output()
        .expect("tonegate runs");
    let table = stdout(&o);
    assert!(o.status.success(), "{table}{}", stderr(&o));
    assert!(
        table.contains("tonegate (portable kernel) passes 20 of 20 rows"),
        "{table}"
    );
    let bogus = tonegate_command()
        .arg("conformance")
        .env("TONEGATE_INBAND_KERNEL", "sse9")
        .output()
        .expect("tonegate runs");
    assert_eq!(bogus.status.code(), Some(1));
    assert!(
        stderr(&bogus).contains("TONEGATE_INBAND_KERNEL `sse9`: use portable or auto"),
        "{}",
        stderr(&bogus)
    );
}

#[test]
fn short_talkoff_finds_no_false_press_on_speech_and_music() {
    let corpora = Path::new("/usr/share/asterisk/sounds/en_US_f_Allison").is_dir()
        && Path::new("/usr/share/asterisk/moh").is_dir();
    if !corpora && !required("TONEGATE_REQUIRE_TALKOFF") {
        eprintln!("skipped: Asterisk sound packages not installed (scripts/test.sh installs them)");
        return;
    }
    // About three minutes of each: the full hour is scripts/talkoff.sh.
    let o = tonegate(&["talkoff", "--limit-seconds", "180", "--check", "--list"]);
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    let table = stdout(&o);
    assert!(!table.contains("tonegate key"), "{table}");
}

/// A 16-bit PCM WAV header and samples.
fn pcm_wav(samples: &[i16]) -> Vec<u8> {
    let data = (samples.len() * 2) as u32;
    let mut w = Vec::with_capacity(44 + data as usize);
    w.extend_from_slice(b"RIFF");
    w.extend_from_slice(&(36 + data).to_le_bytes());
    w.extend_from_slice(b"WAVEfmt ");
    for v in [16u32, 0x0001_0001, 8000, 16000] {
        w.extend_from_slice(&v.to_le_bytes());
    }
    w.extend_from_slice(&0x0010_0002u32.to_le_bytes());
    w.extend_from_slice(b"data");
    w.extend_from_slice(&data.to_le_bytes());
    for s in samples {
        w.extend_from_slice(&s.to_le_bytes());
    }
    w
}

#[test]
fn output_closed_by_the_reader_ends_quietly_with_status_141() {
    // 1,000 presses of key 5 (60 ms on, 60 ms off): far more text than a pipe holds, so
    // `tonegate replay ... | head -1` closes stdout while replay is still writing.
    let (low, high) = tonegate_media::Key::from_char('5').unwrap().frequencies();
    let (low, high) = (f64::from(low), f64::from(high));
    let mut samples = Vec::new();
    for _ in 0..1000 {
        for n in 0..480 {
            let t = n as f64 / 8000.0;
            let x = 3000.0
                * ((2.0 * std::f64::consts::PI * low * t).sin()
                    + (2.0 * std::f64::consts::PI * high * t).sin());
            samples.push(x as i16);
        }
        samples.extend(std::iter::repeat_n(0i16, 480));
    }
    let wav = write_temp("many-presses.wav", &pcm_wav(&samples));
    let mut child = Command::new(env!("CARGO_BIN_EXE_tonegate"))
        .arg("replay")
        .arg(&wav)
        .arg("--show-keys")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("tonegate runs");
    let mut first = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().expect("piped")),
        &mut first,
    )
    .unwrap();
    // The reader is gone (dropped above), as `head -1` would be.
    let out = child.wait_with_output().unwrap();
    assert!(first.contains("key 5"), "{first}");
    assert_eq!(
        out.status.code(),
        Some(141),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "",
        "no panic, no message"
    );
}
