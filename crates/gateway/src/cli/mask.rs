//! `tonegate mask IN OUT`: the relay's tone scrubber ([`tonegate_media::scrub::ToneScrubber`])
//! over a whole recording, as a call with masking on from its first packet to its last.
//!
//! - A WAV file (8 kHz mono; 16-bit PCM, mu-law or A-law) is written back as a WAV of the same
//!   encoding, scrubbed in 20 ms packets (the media time of each is its sample offset).
//! - A pcap or pcapng capture is written as pcap (nanosecond timestamps, the input's link
//!   type): every RTP packet in PCMU (0) or PCMA (8) is scrubbed in place, with one scrubber per
//!   UDP flow and SSRC, in capture order with each packet's RTP timestamp (as the relay sees
//!   them); RTP telephone-events (`--event-pt`, default 101) are removed; every other frame,
//!   and the frames' timestamps, sequence numbers and lengths, are kept. The UDP checksum of a
//!   changed datagram is recomputed (IPv6) or zeroed (IPv4, where zero means "none").
//!
//! Outside the replaced samples the audio is bit-exact (a mu-law WAV's negative zero, 0x7F,
//! comes back as 0xFF: the same value).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::ValueEnum;
use thiserror::Error;
use tonegate_media::audio::AudioCodec;
use tonegate_media::capture::{CaptureError, CaptureReader};
use tonegate_media::g711::Law;
use tonegate_media::scrub::{Replacement, ToneScrubber};
use tonegate_media::udp::{udp_datagram, LinkType};
use tonegate_media::wav::{read_wav, write_wav, WavEncoding, WavError};

/// Options of `tonegate mask`.
#[derive(Debug, clap::Args)]
pub(crate) struct MaskArgs {
    /// A WAV file (8 kHz mono; 16-bit PCM, mu-law or A-law) or a pcap/pcapng capture.
    input: PathBuf,
    /// Where the masked copy goes (WAV for a WAV, pcap for a capture).
    output: PathBuf,
    /// What replaces a tone.
    #[arg(long, value_enum, default_value_t = ReplacementArg::Silence)]
    replacement: ReplacementArg,
    /// Telephone-event payload type to remove (repeatable; default 101).
    #[arg(long = "event-pt", value_name = "PT", value_parser = clap::value_parser!(u8).range(0..=127))]
    event_pt: Vec<u8>,
}

/// `--replacement`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum ReplacementArg {
    /// The codec's silence.
    Silence,
    /// White noise at the stream's background level.
    Noise,
    /// A steady 1000 Hz tone at -20 dBm0 (never a key: one frequency, outside both groups).
    Tone,
}

impl From<ReplacementArg> for Replacement {
    fn from(r: ReplacementArg) -> Replacement {
        match r {
            ReplacementArg::Silence => Replacement::Silence,
            ReplacementArg::Noise => Replacement::Noise,
            ReplacementArg::Tone => Replacement::Tone,
        }
    }
}

/// Why an input cannot be masked.
#[derive(Debug, Error, PartialEq, Eq)]
pub(crate) enum MaskError {
    /// Neither RIFF/WAVE nor a capture.
    #[error("not a WAV file or a pcap/pcapng capture (it starts with bytes {start})")]
    UnknownFormat {
        /// The first bytes, in hex.
        start: String,
    },
    /// The WAV cannot be read.
    #[error(transparent)]
    Wav(#[from] WavError),
    /// A WAV with more than one channel (a masked copy must keep them all; not supported).
    #[error("the WAV file has {0} channels: tonegate mask takes mono audio (split it first, e.g. `sox in.wav out.wav remix 1`)")]
    Channels(u16),
    /// The capture cannot be read.
    #[error(transparent)]
    Capture(#[from] CaptureError),
    /// Frames of two link types (pcapng interfaces), which one pcap cannot hold.
    #[error("frame {frame} has link type {found:?}, earlier frames {first:?}: a pcap holds one link type")]
    MixedLinkTypes {
        /// The frame.
        frame: u64,
        /// Its link type.
        found: LinkType,
        /// The first frame's.
        first: LinkType,
    },
    /// A capture with no frame.
    #[error("the capture holds no frame")]
    Empty,
}

/// What was done, for the summary line.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Summary {
    pub packets: u64,
    pub scrubbed: u64,
    pub replaced_samples: u64,
    pub events_removed: u64,
}

pub(crate) fn run(args: MaskArgs) -> ExitCode {
    match mask_file(&args) {
        Ok(s) => {
            eprintln!(
                "{}: {} audio packets, {} scrubbed, {} samples ({:.1} ms) replaced, {} telephone-event packets removed",
                args.output.display(),
                s.packets,
                s.scrubbed,
                s.replaced_samples,
                s.replaced_samples as f64 / 8.0,
                s.events_removed
            );
            ExitCode::SUCCESS
        }
        Err(e) => super::failed(&e),
    }
}

fn mask_file(args: &MaskArgs) -> anyhow::Result<Summary> {
    let bytes = std::fs::read(&args.input)
        .with_context(|| format!("cannot open {}", args.input.display()))?;
    let events = if args.event_pt.is_empty() {
        vec![101]
    } else {
        args.event_pt.clone()
    };
    let (out, summary) = mask(&bytes, args.replacement.into(), &events)
        .with_context(|| format!("cannot mask {}", args.input.display()))?;
    write(&args.output, &out)?;
    Ok(summary)
}

fn write(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    std::fs::write(path, bytes).with_context(|| format!("cannot write {}", path.display()))
}

fn scrubber(replacement: Replacement) -> ToneScrubber {
    let kernel = tonegate::inband_config_from_env()
        .unwrap_or_default()
        .kernel;
    ToneScrubber::with_kernel(kernel).with_replacement(replacement)
}

/// Masks a WAV file or a capture held in `bytes`.
pub(crate) fn mask(
    bytes: &[u8],
    replacement: Replacement,
    event_pts: &[u8],
) -> Result<(Vec<u8>, Summary), MaskError> {
    if bytes.len() >= 4 && &bytes[..4] == b"RIFF" {
        return mask_wav(bytes, replacement);
    }
    match CaptureReader::new(bytes) {
        Ok(_) => mask_capture(bytes, replacement, event_pts),
        Err(CaptureError::NotACapture { start }) => Err(MaskError::UnknownFormat { start }),
        Err(e) => Err(e.into()),
    }
}

fn mask_wav(bytes: &[u8], replacement: Replacement) -> Result<(Vec<u8>, Summary), MaskError> {
    let audio = read_wav(bytes, 0)?;
    if audio.channels != 1 {
        return Err(MaskError::Channels(audio.channels));
    }
    let mut s = scrubber(replacement);
    let mut summary = Summary::default();
    let mut out = Vec::with_capacity(audio.samples.len());
    for (i, chunk) in audio.samples.chunks(160).enumerate() {
        let (codec, mut payload): (AudioCodec, Vec<u8>) = match audio.encoding {
            WavEncoding::Pcm16 => (
                AudioCodec::L16,
                chunk.iter().flat_map(|x| x.to_be_bytes()).collect(),
            ),
            WavEncoding::MuLaw => (
                AudioCodec::Pcmu,
                chunk.iter().map(|&x| Law::Mu.encode(x)).collect(),
            ),
            WavEncoding::ALaw => (
                AudioCodec::Pcma,
                chunk.iter().map(|&x| Law::A.encode(x)).collect(),
            ),
        };
        summary.packets += 1;
        s.scrub_at(codec, (i * 160) as u32, &mut payload);
        match codec {
            AudioCodec::L16 => out.extend(
                payload
                    .chunks_exact(2)
                    .map(|b| i16::from_be_bytes([b[0], b[1]])),
            ),
            AudioCodec::Pcmu => {
                out.extend(payload.iter().map(|&b| Law::Mu.table()[usize::from(b)]))
            }
            AudioCodec::Pcma => out.extend(payload.iter().map(|&b| Law::A.table()[usize::from(b)])),
        }
    }
    summary.scrubbed = s.scrubbed();
    summary.replaced_samples = s.replaced_samples();
    Ok((write_wav(&out, audio.encoding), summary))
}

fn linktype_number(link: LinkType) -> u32 {
    match link {
        LinkType::Null => 0,
        LinkType::Ethernet => 1,
        LinkType::RawIp => 101,
        LinkType::Ipv4 => 228,
        LinkType::Ipv6 => 229,
        LinkType::LinuxSll => 113,
        LinkType::LinuxSll2 => 276,
    }
}

fn mask_capture(
    bytes: &[u8],
    replacement: Replacement,
    event_pts: &[u8],
) -> Result<(Vec<u8>, Summary), MaskError> {
    let mut scrubbers: HashMap<(SocketAddr, SocketAddr, u32), ToneScrubber> = HashMap::new();
    let mut summary = Summary::default();
    let mut records = Vec::new();
    let mut first: Option<LinkType> = None;
    for frame in CaptureReader::new(bytes)? {
        let frame = frame?;
        let link = *first.get_or_insert(frame.link);
        if frame.link != link {
            return Err(MaskError::MixedLinkTypes {
                frame: frame.number,
                found: frame.link,
                first: link,
            });
        }
        let mut data = frame.data.to_vec();
        if let Ok(Some(dg)) = udp_datagram(frame.link, frame.data) {
            if let Ok(rtp) = rtp_types::RtpPacket::parse(dg.payload) {
                let pt = rtp.payload_type();
                if event_pts.contains(&pt) {
                    summary.events_removed += 1;
                    continue;
                }
                let codec = match pt {
                    0 => Some(AudioCodec::Pcmu),
                    8 => Some(AudioCodec::Pcma),
                    _ => None,
                };
                if let Some(codec) = codec {
                    let udp_at = dg.payload.as_ptr() as usize - frame.data.as_ptr() as usize;
                    let at = rtp.payload().as_ptr() as usize - frame.data.as_ptr() as usize;
                    let range = at..at + rtp.payload().len();
                    let s = scrubbers
                        .entry((dg.source, dg.destination, rtp.ssrc()))
                        .or_insert_with(|| scrubber(replacement));
                    summary.packets += 1;
                    let before = data[range.clone()].to_vec();
                    s.scrub_at(codec, rtp.timestamp(), &mut data[range.clone()]);
                    // Replacing silence with silence changes nothing: the frame stays as it was.
                    if data[range] != before[..] {
                        let udp = udp_at - 8..udp_at + dg.payload.len();
                        fix_checksum(&mut data[udp], dg.source, dg.destination);
                    }
                }
            }
        }
        let (secs, nanos) = (
            frame.timestamp.as_secs() as u32,
            frame.timestamp.subsec_nanos(),
        );
        records.push((secs, nanos, data));
    }
    let link = first.ok_or(MaskError::Empty)?;
    for s in scrubbers.values() {
        summary.scrubbed += s.scrubbed();
        summary.replaced_samples += s.replaced_samples();
    }
    let mut out = Vec::new();
    out.extend_from_slice(&0xa1b2_3c4du32.to_le_bytes()); // nanosecond pcap
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&4u16.to_le_bytes());
    out.extend_from_slice(&0i32.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(&262_144u32.to_le_bytes());
    out.extend_from_slice(&linktype_number(link).to_le_bytes());
    for (secs, nanos, data) in records {
        out.extend_from_slice(&secs.to_le_bytes());
        out.extend_from_slice(&nanos.to_le_bytes());
        out.extend_from_slice(&(data.len() as u32).to_le_bytes());
        out.extend_from_slice(&(data.len() as u32).to_le_bytes());
        out.extend_from_slice(&data);
    }
    Ok((out, summary))
}

/// Sets the checksum of the UDP datagram `udp` (header and payload): zero over IPv4 (no
/// checksum), recomputed over IPv6 (where it is mandatory).
fn fix_checksum(udp: &mut [u8], source: SocketAddr, destination: SocketAddr) {
    udp[6] = 0;
    udp[7] = 0;
    let (SocketAddr::V6(src), SocketAddr::V6(dst)) = (source, destination) else {
        return;
    };
    let mut sum: u32 = 0;
    let mut add = |bytes: &[u8]| {
        for pair in bytes.chunks(2) {
            let word = u16::from_be_bytes([pair[0], *pair.get(1).unwrap_or(&0)]);
            sum += u32::from(word);
        }
    };
    add(&src.ip().octets());
    add(&dst.ip().octets());
    add(&(udp.len() as u32).to_be_bytes());
    add(&[0, 0, 0, 17]);
    add(udp);
    while sum > 0xFFFF {
        sum = (sum & 0xFFFF) + (sum >> 16);
    }
    let checksum = match !(sum as u16) {
        0 => 0xFFFF,
        c => c,
    };
    udp[6..8].copy_from_slice(&checksum.to_be_bytes());
}
