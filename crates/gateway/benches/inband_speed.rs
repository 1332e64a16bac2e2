//! Real-time channels per core of the in-band DTMF detector, tonegate and spandsp in one run.
//!
//! `cargo bench -p tonegate --bench inband_speed` (scripts/bench.sh runs it; the spandsp side
//! needs scripts/spandsp.sh's harness). Both detectors get the same audio
//! (fixtures/inband/noise-12db.wav: 48 key presses in white noise, mu-law decoded), the same
//! number of independent channels (each with its own state, each reading the audio at its own
//! offset), and the same 160-sample blocks (20 ms, one RTP packet), round-robin over the
//! channels, on one thread. Channels per core = audio seconds processed per wall second.
//! Environment: TONEGATE_BENCH_CHANNELS (default 2000), TONEGATE_BENCH_SECONDS (default 20
//! seconds of audio per channel).

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use tonegate_media::inband::{InbandDetector, InbandEvent};
use tonegate_media::wav::read_wav;
use tonegate_media::{ClockRate, MediaTime};

fn env(name: &str, default: f64) -> f64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let config = tonegate::inband_config_from_env().expect("TONEGATE_INBAND_KERNEL");
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let wav = std::fs::read(root.join("fixtures/inband/noise-12db.wav")).expect("fixture");
    let audio = read_wav(&wav, 0).expect("fixture reads").samples;
    let channels = env("TONEGATE_BENCH_CHANNELS", 2000.0) as usize;
    let seconds = env("TONEGATE_BENCH_SECONDS", 20.0);
    let blocks = (seconds * 8000.0 / 160.0) as usize;
    let per = audio.len() / 160;

    let mut detectors: Vec<InbandDetector> = (0..channels)
        .map(|_| InbandDetector::new(config.clone()))
        .collect();
    let mut presses = 0u64;
    let started = Instant::now();
    for b in 0..blocks {
        let time = MediaTime::new((b * 160) as u64, ClockRate::NARROWBAND);
        for (c, d) in detectors.iter_mut().enumerate() {
            let at = ((b + c * 7) % per) * 160;
            d.handle_samples(time, &audio[at..at + 160]).expect("8 kHz");
            while let Some(e) = d.poll_event() {
                presses += u64::from(matches!(e, InbandEvent::Press(_)));
            }
        }
    }
    let wall = started.elapsed().as_secs_f64();
    let samples = (blocks * 160 * channels) as f64;
    let ours = samples / 8000.0 / wall;
    println!(
        "in-band DTMF detection, {channels} channels x {seconds} s of audio, 160-sample blocks, one core, {} kernel",
        detectors[0].kernel().name()
    );
    println!("| detector | wall s | Msamples/s | real-time channels/core | presses |");
    println!("|---|---|---|---|---|");
    println!(
        "| tonegate | {wall:.2} | {:.0} | {ours:.0} | {presses} |",
        samples / wall / 1e6
    );

    let harness = std::env::var_os("TONEGATE_SPANDSP")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| root.join("target/spandsp/harness"));
    if !harness.is_file() {
        println!("spandsp: harness not built (scripts/spandsp.sh); not compared");
        return;
    }
    let raw = std::env::temp_dir().join(format!("tonegate-bench-{}.s16le", std::process::id()));
    let bytes: Vec<u8> = audio.iter().flat_map(|s| s.to_le_bytes()).collect();
    std::fs::write(&raw, bytes).expect("temp file");
    let out = Command::new(&harness)
        .args(["bench", &channels.to_string(), &seconds.to_string()])
        .arg(&raw)
        .output()
        .expect("harness runs");
    let _ = std::fs::remove_file(&raw);
    let text = String::from_utf8_lossy(&out.stdout);
    let field = |name: &str| -> f64 {
        let mut it = text.split_whitespace();
        it.position(|w| w == name).expect("harness output field");
        it.next().and_then(|v| v.parse().ok()).expect("a number")
    };
    let (s_samples, s_wall, s_digits) = (field("samples"), field("seconds"), field("digits"));
    let theirs = s_samples / 8000.0 / s_wall;
    println!(
        "| spandsp 0.0.6 | {s_wall:.2} | {:.0} | {theirs:.0} | {s_digits} |",
        s_samples / s_wall / 1e6
    );
    println!("\ntonegate / spandsp: {:.2}x", ours / theirs);
}
