//! `tonegate replay FILE.wav`: in-band key presses of a WAV file, printed like a capture's.

use std::io::{self, Read, Write};
use std::path::Path;

use anyhow::Context;
use serde_json::json;
use tonegate_media::inband::{InbandDetector, InbandEvent, InbandPress};
use tonegate_media::wav::{read_wav, WavAudio, WavEncoding};
use tonegate_media::{ClockRate, MediaTime};

use super::output::{ending_name, key_label, round3};
use super::{Format, ReplayArgs};

/// Samples per call into the detector: one 20 ms RTP packet's worth, as on a live call.
pub(crate) const FEED: usize = 160;

/// Whether `path` starts like a WAV file (RIFF/WAVE), whatever its name.
pub(crate) fn is_wav(path: &Path) -> bool {
    let mut head = [0u8; 12];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut head))
        .is_ok_and(|()| &head[..4] == b"RIFF" && &head[8..] == b"WAVE")
}

/// Reads one channel of a WAV file, with a message naming the file.
pub(crate) fn read(path: &Path, channel: u16) -> anyhow::Result<WavAudio> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot open {}", path.display()))?;
    read_wav(&bytes, channel).with_context(|| format!("cannot read {}", path.display()))
}

/// What the detector heard in a run over samples.
pub(crate) struct Detection {
    pub presses: Vec<InbandPress>,
    /// Band levels per 10 ms block, when asked for.
    pub bands: Vec<[f32; 8]>,
}

/// Runs a fresh detector over `samples` in 160-sample calls.
pub(crate) fn detect(samples: &[i16], keep_bands: bool) -> Detection {
    // The kernel was checked when the command started (main).
    let config = tonegate::inband_config_from_env().unwrap_or_default();
    let mut detector = InbandDetector::new(config);
    let mut out = Detection {
        presses: Vec::new(),
        bands: Vec::new(),
    };
    let drain = |d: &mut InbandDetector, out: &mut Detection| {
        while let Some(event) = d.poll_event() {
            if let InbandEvent::Press(p) = event {
                out.presses.push(p);
            }
        }
    };
    let step = if keep_bands { 80 } else { FEED };
    for (i, chunk) in samples.chunks(step).enumerate() {
        let at = MediaTime::new((i * step) as u64, ClockRate::NARROWBAND);
        detector.handle_samples(at, chunk).expect("8 kHz timeline");
        if keep_bands && chunk.len() == step {
            out.bands.push(detector.band_levels());
        }
        drain(&mut detector, &mut out);
    }
    detector.finish();
    drain(&mut detector, &mut out);
    out
}

fn encoding_name(e: WavEncoding) -> &'static str {
    match e {
        WavEncoding::Pcm16 => "pcm16",
        WavEncoding::MuLaw => "mu-law",
        WavEncoding::ALaw => "a-law",
    }
}

pub(crate) fn replay_wav(args: &ReplayArgs, path: &Path) -> anyhow::Result<()> {
    let audio = read(path, args.channel)?;
    let detection = detect(&audio.samples, args.plot.is_some());
    let stream = format!("{}/ch{}", path.display(), args.channel);
    let stdout = io::stdout();
    let mut out = io::BufWriter::new(stdout.lock());
    for p in &detection.presses {
        let key = key_label(p.press.key(), args.show_keys);
        let start = p.press.start().ticks() as f64 / 8.0;
        let duration = p.press.duration().as_millis().0;
        match args.format {
            Format::Json => {
                let line = json!({
                    "stream": stream,
                    "ssrc": null,
                    "key": key,
                    "start_ms": round3(start),
                    "duration_ms": round3(duration),
                    "volume_dbm0": p.press.volume().map(|v| v.0),
                    "source": p.press.source().as_str(),
                    "ending": ending_name(p.ending),
                    "low_dbm0": round1(p.low_level.0),
                    "high_dbm0": round1(p.high_level.0),
                    "twist_db": round1(p.twist.0),
                });
                writeln!(out, "{line}")?;
            }
            Format::Text => writeln!(
                out,
                "{:<48} key {}  start {:>10.1} ms  duration {:>7.1} ms  {}  low {:.1} dBm0  high {:.1} dBm0  twist {:+.1} dB",
                stream,
                key,
                start,
                duration,
                p.press.source().as_str(),
                p.low_level.0,
                p.high_level.0,
                p.twist.0,
            )?,
        }
    }
    let seconds = audio.samples.len() as f64 / 8000.0;
    match args.format {
        Format::Json => writeln!(
            out,
            "{}",
            json!({
                "summary": "wav",
                "stream": stream,
                "encoding": encoding_name(audio.encoding),
                "channels": audio.channels,
                "channel": args.channel,
                "samples": audio.samples.len(),
                "duration_ms": round3(seconds * 1000.0),
                "key_presses": detection.presses.len(),
            })
        )?,
        Format::Text => writeln!(
            out,
            "# wav {}: channel {} of {}, {}, {:.2} s, {} key presses",
            path.display(),
            args.channel,
            audio.channels,
            encoding_name(audio.encoding),
            seconds,
            detection.presses.len()
        )?,
    }
    out.flush()?;
    if let Some(png) = &args.plot {
        super::plot::timeline(
            png,
            &detection.bands,
            &detection.presses,
            audio.samples.len(),
            args.show_keys,
        )
        .with_context(|| format!("cannot draw {}", png.display()))?;
        eprintln!("tonegate: timeline drawn to {}", png.display());
    }
    Ok(())
}

fn round1(x: f32) -> f64 {
    (f64::from(x) * 10.0).round() / 10.0
}
