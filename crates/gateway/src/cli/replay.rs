//! `tonegate replay`: a capture's key presses on stdout, errors on stderr.

use std::fs::File;
use std::io::{self, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{bail, Context};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;
use tonegate_media::audio::AudioConfig;
use tonegate_media::capture::{CaptureError, CaptureReader};
use tonegate_media::replay::{Replay, ReplayConfig, ReplayPress, StreamSummary};
use tonegate_media::rfc4733::DecoderConfig;
use tonegate_media::sdp::SdpPayloadTypes;
use tonegate_media::Millis;

use super::output::{ending_name, key_label, round3};
use super::{Format, ReplayArgs};

/// Captures smaller than this replay too fast for a progress bar to be worth drawing.
const PROGRESS_MIN_BYTES: u64 = 32 * 1024 * 1024;

/// Captures smaller than this are read before a prefetch thread would help.
const PREFETCH_MIN_BYTES: u64 = 64 * 1024 * 1024;

/// The fixture replayed when no file is given (the README's first command).
const BUNDLED: &str = "fixtures/rfc4733/basic.pcap";

pub(crate) fn run(args: ReplayArgs) -> ExitCode {
    match replay(&args) {
        Ok(Outcome::Complete) => ExitCode::SUCCESS,
        Ok(Outcome::Damaged(err)) => {
            eprintln!("tonegate: {err}; the key presses before it are printed above");
            ExitCode::from(3)
        }
        Err(err) => super::failed(&err),
    }
}

enum Outcome {
    Complete,
    Damaged(CaptureError),
}

fn bundled_fixture() -> PathBuf {
    // From the repository root (the README's quick start), or next to the source tree.
    let local = PathBuf::from(BUNDLED);
    if local.exists() {
        return local;
    }
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(BUNDLED)
}

fn config(args: &ReplayArgs) -> anyhow::Result<ReplayConfig> {
    let mut decoder = DecoderConfig {
        end_timeout: Millis(args.end_timeout_ms),
        ..DecoderConfig::default()
    };
    if !args.event_pt.is_empty() {
        decoder.event_payload_types = args.event_pt.clone();
    }
    decoder.red_payload_types = args.red_pt.clone();
    if let Some(path) = &args.sdp {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read SDP file {}", path.display()))?;
        let found = SdpPayloadTypes::from_sdp(&text);
        if found.telephone_event.is_empty() {
            bail!(
                "SDP file {} has no `a=rtpmap:N telephone-event/RATE` line",
                path.display()
            );
        }
        if let Some(&(_, rate)) = found.telephone_event.first() {
            decoder.clock_rate = rate;
        }
        for (pt, _) in found.telephone_event {
            if !decoder.event_payload_types.contains(&pt) {
                decoder.event_payload_types.push(pt);
            }
        }
        decoder.red_payload_types.extend(found.red);
    }
    let mut audio = AudioConfig {
        enabled: !args.no_inband,
        ..AudioConfig::default()
    };
    audio.l16_payload_types = args.l16_pt.clone();
    Ok(ReplayConfig {
        decoder,
        ports: args.port.clone(),
        audio,
        inband: tonegate::inband_config_from_env()?,
    })
}

fn replay(args: &ReplayArgs) -> anyhow::Result<Outcome> {
    let path = args.file.clone().unwrap_or_else(bundled_fixture);
    if super::wav::is_wav(&path) {
        super::wav::replay_wav(args, &path)?;
        return Ok(Outcome::Complete);
    }
    if args.plot.is_some() {
        bail!(
            "--plot draws a WAV file's bands; {} is not a WAV file",
            path.display()
        );
    }
    let config = config(args)?;
    let file =
        File::open(&path).with_context(|| format!("cannot open capture {}", path.display()))?;
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    if len == 0 {
        bail!("{} is empty: not a capture", path.display());
    }
    // SAFETY of the map is the OS's: the file is only read, and tonegate does not write it.
    // memmap2 marks the call unsafe because another process could truncate the file.
    let map = map_file(&file).with_context(|| format!("cannot read {}", path.display()))?;
    let mut reader =
        CaptureReader::new(&map).with_context(|| format!("cannot replay {}", path.display()))?;

    // With a cold page cache, faults on the map would leave the disk idle while the decoder
    // works and the decoder idle while the disk works. A second thread touching every page
    // ahead of the decoder keeps both busy (replay is single-threaded otherwise).
    let done = AtomicBool::new(false);
    std::thread::scope(|scope| {
        if len >= PREFETCH_MIN_BYTES {
            scope.spawn(|| prefetch(&map, &done));
        }
        let outcome = decode(args, &path, len, config, &map, &mut reader);
        done.store(true, Ordering::Relaxed);
        outcome
    })
}

/// Touches one byte per page, front to back, to pull the file into the page cache; stops
/// early when decoding has ended (a damaged capture).
fn prefetch(map: &[u8], done: &AtomicBool) {
    let mut sum = 0u8;
    for (i, page) in map.chunks(4096).enumerate() {
        if i % 256 == 0 && done.load(Ordering::Relaxed) {
            break;
        }
        sum = sum.wrapping_add(page[0]);
    }
    std::hint::black_box(sum);
}

fn decode(
    args: &ReplayArgs,
    path: &Path,
    len: u64,
    config: ReplayConfig,
    map: &[u8],
    reader: &mut CaptureReader<'_>,
) -> anyhow::Result<Outcome> {
    let progress = (len >= PROGRESS_MIN_BYTES && io::stderr().is_terminal()).then(|| {
        let bar = ProgressBar::new(len);
        bar.set_style(
            ProgressStyle::with_template("{bar:40} {bytes}/{total_bytes} {bytes_per_sec} {eta}")
                .expect("static template"),
        );
        bar
    });

    let stdout = io::stdout();
    let mut out = io::BufWriter::new(stdout.lock());
    let mut replay = Replay::new(config, std::time::Instant::now());
    let mut damage = None;
    let mut frames = 0u64;
    for frame in reader.by_ref() {
        match frame {
            Ok(frame) => {
                replay.handle_frame(&frame);
                frames += 1;
                for press in replay.drain_presses() {
                    print_press(&mut out, args.format, args.show_keys, &press)?;
                }
                if frames.is_multiple_of(65_536) {
                    if let Some(bar) = &progress {
                        bar.set_position(frame_position(&frame, map));
                    }
                }
            }
            Err(err) => {
                damage = Some(err);
                break;
            }
        }
    }
    if let Some(bar) = progress {
        bar.finish_and_clear();
    }
    let (streams, counts) = replay.finish();
    for press in replay.drain_presses() {
        print_press(&mut out, args.format, args.show_keys, &press)?;
    }
    if streams.is_empty() && damage.is_none() {
        out.flush()?;
        if counts.frames == 0 {
            bail!("{} holds no packets", path.display());
        }
        bail!(
            "no RTP found in {} ({} frames, {} UDP datagrams); if the RTP is there, name its \
             port with --port",
            path.display(),
            counts.frames,
            counts.udp
        );
    }
    for stream in &streams {
        print_summary(&mut out, args.format, stream)?;
    }
    out.flush()?;
    Ok(match damage {
        Some(err) => Outcome::Damaged(err),
        None => Outcome::Complete,
    })
}

fn frame_position(frame: &tonegate_media::capture::Frame<'_>, map: &[u8]) -> u64 {
    // Frames borrow from the map: their address gives the position without extra state.
    (frame.data.as_ptr() as usize).saturating_sub(map.as_ptr() as usize) as u64
}

#[allow(unsafe_code)]
fn map_file(file: &File) -> io::Result<memmap2::Mmap> {
    // SAFETY: read-only mapping of a capture file; see the note at the call site.
    let map = unsafe { memmap2::Mmap::map(file) }?;
    // Replay reads front to back once: ask the kernel to read ahead aggressively.
    #[cfg(unix)]
    map.advise(memmap2::Advice::Sequential)?;
    Ok(map)
}

fn print_press(
    out: &mut impl Write,
    format: Format,
    show_keys: bool,
    press: &ReplayPress,
) -> io::Result<()> {
    let p = &press.press;
    let key = key_label(p.key(), show_keys);
    let duration = p.duration().as_millis().0;
    match format {
        Format::Json => {
            let line = json!({
                "stream": press.stream.to_string(),
                "ssrc": format!("0x{:08x}", press.stream.ssrc),
                "key": key,
                "start_ms": round3(press.start.0),
                "duration_ms": round3(duration),
                "volume_dbm0": p.volume().map(|v| v.0),
                "source": p.source().as_str(),
                "ending": ending_name(press.ending),
            });
            writeln!(out, "{line}")
        }
        Format::Text => writeln!(
            out,
            "{:<48} key {}  start {:>10.1} ms  duration {:>7.1} ms  {}",
            press.stream.to_string(),
            key,
            press.start.0,
            duration,
            p.source().as_str()
        ),
    }
}

fn print_summary(out: &mut impl Write, format: Format, s: &StreamSummary) -> io::Result<()> {
    let pts: Vec<u8> = s.payload_types.iter().copied().collect();
    match format {
        Format::Json => {
            let line = json!({
                "summary": "stream",
                "stream": s.id.to_string(),
                "ssrc": format!("0x{:08x}", s.id.ssrc),
                "source": s.id.source.to_string(),
                "destination": s.id.destination.to_string(),
                "payload_types": pts,
                "packets": s.packets,
                "lost": s.lost,
                "key_presses": s.key_presses,
                "non_key_events": s.non_key_events,
                "refused": s.refused,
                "merged_duplicates": s.merged,
                "audio_packets": s.audio.packets,
                "audio_late": s.audio.late,
                "audio_concealed_samples": s.audio.concealed,
                "first_seen_ms": round3(s.first_seen.0),
            });
            writeln!(out, "{line}")
        }
        Format::Text => writeln!(
            out,
            "# stream {}: payload types {:?}, {} packets, {} lost, {} key presses",
            s.id, pts, s.packets, s.lost, s.key_presses
        ),
    }
}
