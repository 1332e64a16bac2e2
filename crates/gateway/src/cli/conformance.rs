//! `tonegate conformance` (the ITU-T Q.24 matrix over `fixtures/inband/`) and `tonegate
//! talkoff` (false presses per hour on speech and music), each side by side with spandsp.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{bail, Context};
use serde::Deserialize;

use super::spandsp::Spandsp;
use super::wav::{detect, read};

/// `println!` and `print!` that hand a closed stdout (`tonegate talkoff --list | head`) back
/// as an error for [`crate::failed`] instead of panicking.
macro_rules! outln {
    ($($t:tt)*) => {
        writeln!(std::io::stdout().lock(), $($t)*)?
    };
}
macro_rules! out {
    ($($t:tt)*) => {
        write!(std::io::stdout().lock(), $($t)*)?
    };
}

/// Options of `tonegate conformance`.
#[derive(Debug, clap::Args)]
pub(crate) struct ConformanceArgs {
    /// Directory holding the conformance WAVs and their manifest.toml.
    #[arg(long, value_name = "DIR", default_value = "fixtures/inband")]
    dir: PathBuf,
    /// The spandsp harness (default: $TONEGATE_SPANDSP or target/spandsp/harness, built by
    /// scripts/spandsp.sh). Without one, only tonegate's column is printed.
    #[arg(long, value_name = "PATH")]
    spandsp: Option<PathBuf>,
    /// Fail (exit 1) when the spandsp harness is not found.
    #[arg(long)]
    require_spandsp: bool,
}

/// Options of `tonegate talkoff`.
#[derive(Debug, clap::Args)]
pub(crate) struct TalkoffArgs {
    /// Speech: a directory searched for 8 kHz WAV files (Debian's asterisk-core-sounds-en-wav).
    /// The voice's own directory, not its parent: the other languages' packages install beside
    /// it and are held out from tuning (scripts/talkoff-heldout.sh).
    #[arg(
        long,
        value_name = "DIR",
        default_value = "/usr/share/asterisk/sounds/en_US_f_Allison"
    )]
    speech: PathBuf,
    /// Music: likewise (Debian's asterisk-moh-opsound-wav).
    #[arg(long, value_name = "DIR", default_value = "/usr/share/asterisk/moh")]
    music: PathBuf,
    /// Stop each corpus after this many seconds of audio (files in name order); 0: all.
    #[arg(long, value_name = "SECONDS", default_value_t = 0.0)]
    limit_seconds: f64,
    /// The spandsp harness (as for `conformance`).
    #[arg(long, value_name = "PATH")]
    spandsp: Option<PathBuf>,
    /// Print every false press (file, time, key, detector).
    #[arg(long)]
    list: bool,
    /// Exit 1 unless tonegate has no false press on speech, and on music none or fewer than
    /// spandsp; fail too when the corpora or the spandsp harness are missing.
    #[arg(long)]
    check: bool,
}

#[derive(Debug, Deserialize)]
struct Manifest {
    fixture: Vec<Fixture>,
}

#[derive(Debug, Deserialize)]
struct Fixture {
    file: String,
    condition: String,
    requirement: String,
    keys: String,
}

pub(crate) fn run_conformance(args: &ConformanceArgs) -> ExitCode {
    match conformance(args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(err) => super::failed(&err),
    }
}

/// How a detector did on one row: keys heard, and whether that is what the row expects.
fn verdict(expected: &str, heard: &str) -> (String, bool) {
    let pass = heard == expected;
    let want = expected.chars().count();
    let got = heard.chars().count();
    let result = if expected.is_empty() {
        if got == 0 {
            "none detected".to_string()
        } else {
            format!("{got} detected")
        }
    } else if pass {
        format!("{got}/{want} detected")
    } else {
        let found = in_order(expected, heard);
        format!("{got} detected, {found}/{want} in order")
    };
    (result, pass)
}

/// Keys of `want` found in `got` in order (longest common subsequence).
fn in_order(want: &str, got: &str) -> usize {
    let (w, g): (Vec<char>, Vec<char>) = (want.chars().collect(), got.chars().collect());
    let mut row = vec![0usize; g.len() + 1];
    for &a in &w {
        let mut diagonal = 0;
        for (j, &b) in g.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = if a == b {
                diagonal + 1
            } else {
                above.max(row[j])
            };
            diagonal = above;
        }
    }
    row[g.len()]
}

fn conformance(args: &ConformanceArgs) -> anyhow::Result<bool> {
    let manifest_path = args.dir.join("manifest.toml");
    let text = std::fs::read_to_string(&manifest_path).with_context(|| {
        format!(
            "cannot read {} (generate it with scripts/gen_inband.py)",
            manifest_path.display()
        )
    })?;
    let manifest: Manifest = toml::from_str(&text)
        .with_context(|| format!("cannot parse {}", manifest_path.display()))?;
    let spandsp = Spandsp::find(args.spandsp.as_deref());
    if spandsp.is_none() && args.require_spandsp {
        bail!("the spandsp harness was not found; build it with scripts/spandsp.sh");
    }
    let mut rows = Vec::new();
    let mut all_pass = true;
    let mut spandsp_passes = 0;
    for f in &manifest.fixture {
        let audio = read(&args.dir.join(&f.file), 0)?;
        let ours: String = detect(&audio.samples, false)
            .presses
            .iter()
            .map(|p| p.press.key().as_char())
            .collect();
        let (result, pass) = verdict(&f.keys, &ours);
        all_pass &= pass;
        let theirs = match &spandsp {
            Some(s) => {
                let keys: String = s.detect(&audio.samples)?.iter().map(|p| p.key).collect();
                let (r, p) = verdict(&f.keys, &keys);
                spandsp_passes += usize::from(p);
                Some((r, p))
            }
            None => None,
        };
        rows.push((f, result, pass, theirs));
    }
    let yes = |p: bool| if p { "yes" } else { "**no**" };
    outln!(
        "| condition | requirement | tonegate | pass |{}",
        if spandsp.is_some() {
            " spandsp 0.0.6 | pass |"
        } else {
            ""
        }
    );
    outln!(
        "|---|---|---|---|{}",
        if spandsp.is_some() { "---|---|" } else { "" }
    );
    for (f, result, pass, theirs) in &rows {
        let mut line = format!(
            "| {} | {} | {} | {} |",
            f.condition,
            f.requirement,
            result,
            yes(*pass)
        );
        if let Some((r, p)) = theirs {
            line.push_str(&format!(" {} | {} |", r, yes(*p)));
        }
        outln!("{line}");
    }
    let passed = rows.iter().filter(|r| r.2).count();
    out!(
        "\ntonegate ({} kernel) passes {passed} of {} rows",
        tonegate::inband_config_from_env()
            .unwrap_or_default()
            .kernel
            .or_portable()
            .name(),
        rows.len()
    );
    match &spandsp {
        Some(s) => outln!("; spandsp ({}) passes {spandsp_passes}", s.path().display()),
        None => outln!("; spandsp not compared (build its harness with scripts/spandsp.sh)"),
    }
    Ok(all_pass)
}

pub(crate) fn run_talkoff(args: &TalkoffArgs) -> ExitCode {
    match talkoff(args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(err) => super::failed(&err),
    }
}

fn wav_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut paths: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
    paths.sort();
    for p in paths {
        if p.is_dir() {
            wav_files(&p, out);
        } else if p.extension().is_some_and(|e| e.eq_ignore_ascii_case("wav")) {
            out.push(p);
        }
    }
}

#[derive(Default)]
struct Tally {
    files: usize,
    skipped: usize,
    seconds: f64,
    ours: usize,
    theirs: usize,
    ours_wall: f64,
}

fn corpus(
    name: &str,
    dir: &Path,
    args: &TalkoffArgs,
    spandsp: Option<&Spandsp>,
) -> anyhow::Result<Tally> {
    let mut files = Vec::new();
    wav_files(dir, &mut files);
    let mut t = Tally::default();
    for path in files {
        if args.limit_seconds > 0.0 && t.seconds >= args.limit_seconds {
            break;
        }
        let Ok(audio) = read(&path, 0) else {
            t.skipped += 1; // not 8 kHz or not a format we read: counted, not guessed at
            continue;
        };
        t.files += 1;
        t.seconds += audio.samples.len() as f64 / 8000.0;
        let started = Instant::now();
        let ours = detect(&audio.samples, false).presses;
        t.ours_wall += started.elapsed().as_secs_f64();
        t.ours += ours.len();
        if args.list {
            for p in &ours {
                outln!(
                    "{name}: tonegate key {} at {:.2} s in {}",
                    p.press.key().as_char(),
                    p.press.start().ticks() as f64 / 8000.0,
                    path.display()
                );
            }
        }
        if let Some(s) = spandsp {
            let theirs = s.detect(&audio.samples)?;
            t.theirs += theirs.len();
            if args.list {
                for p in &theirs {
                    outln!(
                        "{name}: spandsp key {} at {:.2} s in {}",
                        p.key,
                        p.start as f64 / 8000.0,
                        path.display()
                    );
                }
            }
        }
    }
    Ok(t)
}

fn talkoff(args: &TalkoffArgs) -> anyhow::Result<bool> {
    let spandsp = Spandsp::find(args.spandsp.as_deref());
    if args.check && spandsp.is_none() {
        bail!("the spandsp harness was not found; build it with scripts/spandsp.sh");
    }
    let speech = corpus("speech", &args.speech, args, spandsp.as_ref())?;
    let music = corpus("music", &args.music, args, spandsp.as_ref())?;
    if args.check && (speech.files == 0 || music.files == 0) {
        bail!(
            "no 8 kHz WAV files under {} or {}; install asterisk-core-sounds-en-wav and \
             asterisk-moh-opsound-wav (scripts/talkoff.sh does)",
            args.speech.display(),
            args.music.display()
        );
    }
    outln!("| audio | files | hours | tonegate false presses | per hour | spandsp false presses | per hour |");
    outln!("|---|---|---|---|---|---|---|");
    for (name, t) in [("speech", &speech), ("music", &music)] {
        let hours = t.seconds / 3600.0;
        let per = |n: usize| if hours > 0.0 { n as f64 / hours } else { 0.0 };
        let theirs = if spandsp.is_some() {
            format!("{} | {:.1}", t.theirs, per(t.theirs))
        } else {
            "not run | -".to_string()
        };
        outln!(
            "| {name} ({}) | {}{} | {:.3} | {} | {:.1} | {theirs} |",
            if name == "speech" {
                args.speech.display()
            } else {
                args.music.display()
            },
            t.files,
            if t.skipped > 0 {
                format!(" (+{} skipped)", t.skipped)
            } else {
                String::new()
            },
            hours,
            t.ours,
            per(t.ours),
        );
    }
    let audio = speech.seconds + music.seconds;
    let wall = speech.ours_wall + music.ours_wall;
    if wall > 0.0 {
        outln!(
            "\ntonegate detector ({} kernel): {:.0} s of audio in {:.2} s ({:.0}x real time, one core, including nothing but detection)",
            tonegate::inband_config_from_env().unwrap_or_default().kernel.or_portable().name(),
            audio,
            wall,
            audio / wall
        );
    }
    let ok = speech.ours == 0 && (music.ours == 0 || music.ours < music.theirs);
    Ok(!args.check || ok)
}
