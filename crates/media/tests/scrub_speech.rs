//! Collateral of the relay's tone scrubber on recorded speech with no key in it: the Debian
//! Asterisk prompts (`asterisk-core-sounds-{en,fr,es}-wav`; skipped when none is installed).
//! `SCRUB_GRID=1` prints the collateral of neighbouring rules too (for tuning, docs/masking.md).
//!
//! cargo test --release -p tonegate-media --test scrub_speech -- --ignored --nocapture

use std::path::PathBuf;

use tonegate_media::audio::AudioCodec;
use tonegate_media::g711::Law;
use tonegate_media::scrub::{ScrubRule, ToneScrubber};
use tonegate_media::wav::read_wav;

fn corpus() -> Vec<(String, Vec<i16>)> {
    let mut files: Vec<PathBuf> = std::fs::read_dir("/usr/share/asterisk/sounds")
        .into_iter()
        .flatten()
        .flatten()
        .flat_map(|voice| walk(voice.path()))
        .collect();
    files.sort();
    files
        .into_iter()
        .filter_map(|p| {
            let audio = read_wav(&std::fs::read(&p).ok()?, 0).ok()?;
            Some((p.display().to_string(), audio.samples))
        })
        .collect()
}

fn walk(dir: PathBuf) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    entries
        .flatten()
        .flat_map(|e| {
            let p = e.path();
            if p.is_dir() {
                walk(p)
            } else if p.extension().is_some_and(|x| x == "wav") {
                vec![p]
            } else {
                Vec::new()
            }
        })
        .collect()
}

/// Samples replaced and samples in all, over the corpus as mu-law 20 ms packets.
fn collateral(corpus: &[(String, Vec<i16>)], rule: ScrubRule, list: bool) -> (u64, u64) {
    let (mut replaced, mut total) = (0, 0);
    for (name, samples) in corpus {
        let mut s = ToneScrubber::new().with_rule(rule);
        let mut bytes: Vec<u8> = samples.iter().map(|&x| Law::Mu.encode(x)).collect();
        for (i, p) in bytes.chunks_mut(160).enumerate() {
            s.scrub_at(AudioCodec::Pcmu, i as u32 * 160, p);
        }
        if list && s.replaced_samples() > 0 {
            println!("{name}: {} samples", s.replaced_samples());
        }
        replaced += s.replaced_samples();
        total += samples.len() as u64;
    }
    (replaced, total)
}

fn ms_per_minute((replaced, total): (u64, u64)) -> f64 {
    replaced as f64 / total as f64 * 60_000.0
}

#[test]
#[ignore = "reads the installed Debian prompts; run in release"]
fn speech_without_keys_loses_under_100_ms_a_minute() {
    let corpus = corpus();
    if corpus.is_empty() {
        eprintln!("no prompts installed: skipped");
        return;
    }
    let minutes = corpus.iter().map(|c| c.1.len()).sum::<usize>() as f64 / 8000.0 / 60.0;
    if std::env::var_os("SCRUB_GRID").is_some() {
        for strong in [0.7f32, 0.8] {
            for medium in [0.45f32, 0.5, 0.55] {
                for peak in [6.0f32, 8.0, 10.0] {
                    let rule = ScrubRule {
                        strong_share: strong,
                        medium_share: medium,
                        medium_peak_db: peak,
                        ..ScrubRule::default()
                    };
                    let c = collateral(&corpus, rule, false);
                    println!(
                        "strong {strong} medium {medium} peak {peak}: {:.1} ms/min",
                        ms_per_minute(c)
                    );
                }
            }
        }
    }
    // Per voice: the target holds for each language, not only on average.
    for voice in ["en_", "es_", "fr_"] {
        let one: Vec<_> = corpus
            .iter()
            .filter(|(name, _)| name.contains(&format!("/sounds/{voice}")))
            .cloned()
            .collect();
        if one.is_empty() {
            continue;
        }
        let c = ms_per_minute(collateral(&one, ScrubRule::default(), false));
        println!("{voice}: {c:.1} ms per minute");
        assert!(c < 100.0, "{voice}: {c:.1} ms per minute");
    }
    let c = collateral(
        &corpus,
        ScrubRule::default(),
        std::env::var_os("SCRUB_LIST").is_some(),
    );
    println!(
        "{} files, {minutes:.1} min of speech: {} samples replaced, {:.1} ms per minute",
        corpus.len(),
        c.0,
        ms_per_minute(c)
    );
    assert!(ms_per_minute(c) < 100.0);
}
