//! WAV input: 8 kHz 16-bit PCM (read with `hound`) and G.711 mu-law / A-law WAV (format tags 7
//! and 6, which `hound` does not read: their header is read here and the bytes decoded with
//! [`crate::g711`]).
//!
//! One channel is taken from a multi-channel file ([`read_wav`]'s `channel`, 0 = the first).
//! Other sample rates are refused with [`WavError::UnsupportedRate`] naming the rate: the
//! detector is specified at 8 kHz, and a resampler in front of it would move tone edges and
//! add its own filter to a conformance measurement; telephony audio is 8 kHz at the source.

use std::io::Cursor;

use thiserror::Error;

use crate::g711::Law;

/// How the samples were stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WavEncoding {
    /// Linear 16-bit PCM (format tag 1, or 0xFFFE with the PCM subformat).
    Pcm16,
    /// G.711 mu-law (format tag 7).
    MuLaw,
    /// G.711 A-law (format tag 6).
    ALaw,
}

/// One channel of a WAV file as 16-bit linear samples.
#[derive(Clone, Debug)]
pub struct WavAudio {
    /// Sample rate (always 8000 for a file that was read).
    pub rate: u32,
    /// Channels in the file.
    pub channels: u16,
    /// The file's encoding.
    pub encoding: WavEncoding,
    /// The chosen channel's samples.
    pub samples: Vec<i16>,
}

/// Why a WAV file cannot be used.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum WavError {
    /// Not a RIFF/WAVE file.
    #[error("not a WAV file (no RIFF/WAVE header)")]
    NotWav,
    /// A required chunk is missing.
    #[error("WAV file has no `{0}` chunk")]
    MissingChunk(&'static str),
    /// The file ends before what its header announces.
    #[error("WAV file is truncated: {what} needs {needed} bytes at offset {offset}, the file has {available}")]
    Truncated {
        /// What was being read.
        what: &'static str,
        /// Where it starts.
        offset: usize,
        /// Bytes it needs.
        needed: usize,
        /// Bytes left in the file from `offset`.
        available: usize,
    },
    /// A format tag other than PCM (1), A-law (6), mu-law (7) or extensible PCM.
    #[error("unsupported WAV format tag {tag:#06x}: use 16-bit PCM (1), A-law (6) or mu-law (7)")]
    UnsupportedFormat {
        /// The format tag.
        tag: u16,
    },
    /// PCM with a sample size other than 16 bits, or G.711 with other than 8.
    #[error("unsupported sample size {bits} bits for {encoding}; use 16-bit PCM or 8-bit G.711")]
    UnsupportedBits {
        /// Bits per sample.
        bits: u16,
        /// The encoding named by the format tag.
        encoding: &'static str,
    },
    /// A sample rate other than 8000 Hz.
    #[error("sample rate {hz} Hz is not supported: in-band DTMF detection needs 8000 Hz audio (resample it, e.g. `sox in.wav -r 8000 out.wav`)")]
    UnsupportedRate {
        /// The file's sample rate.
        hz: u32,
    },
    /// The requested channel does not exist.
    #[error(
        "channel {channel} does not exist: the file has {channels} channel(s), numbered from 0"
    )]
    NoSuchChannel {
        /// The channel asked for.
        channel: u16,
        /// Channels in the file.
        channels: u16,
    },
    /// The file has no channels.
    #[error("WAV header declares 0 channels")]
    NoChannels,
    /// `hound` refused the PCM data.
    #[error("cannot read PCM samples: {0}")]
    Pcm(String),
}

struct Format {
    tag: u16,
    channels: u16,
    rate: u32,
    bits: u16,
    block_align: u16,
}

fn read_u16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn read_u32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Reads channel `channel` (0-based) of the WAV file in `bytes`.
pub fn read_wav(bytes: &[u8], channel: u16) -> Result<WavAudio, WavError> {
    if bytes.len() < 12 || &bytes[..4] != b"RIFF" || &bytes[8..12] != b"WAVE" {
        return Err(WavError::NotWav);
    }
    let mut at = 12;
    let mut format = None;
    let mut data = None;
    while at + 8 <= bytes.len() {
        let id = &bytes[at..at + 4];
        let size = read_u32(bytes, at + 4) as usize;
        let body = at + 8;
        let available = bytes.len() - body;
        if id == b"fmt " {
            if size < 16 || available < 16 {
                return Err(WavError::Truncated {
                    what: "the fmt chunk",
                    offset: body,
                    needed: size.max(16),
                    available,
                });
            }
            let mut tag = read_u16(bytes, body);
            if tag == 0xFFFE && size >= 40 && available >= 40 {
                // WAVE_FORMAT_EXTENSIBLE: the real tag is the subformat GUID's first 2 bytes.
                tag = read_u16(bytes, body + 24);
            }
            format = Some(Format {
                tag,
                channels: read_u16(bytes, body + 2),
                rate: read_u32(bytes, body + 4),
                block_align: read_u16(bytes, body + 12),
                bits: read_u16(bytes, body + 14),
            });
        } else if id == b"data" {
            // 0xFFFFFFFF: a streaming writer that never patched the size; take the rest.
            let len = if size == 0xFFFF_FFFF { available } else { size };
            if len > available {
                return Err(WavError::Truncated {
                    what: "the data chunk",
                    offset: body,
                    needed: len,
                    available,
                });
            }
            data = Some((body, len));
            break;
        }
        at = body + size + (size & 1);
    }
    let format = format.ok_or(WavError::MissingChunk("fmt "))?;
    let (data_at, data_len) = data.ok_or(WavError::MissingChunk("data"))?;
    let encoding = match format.tag {
        1 => WavEncoding::Pcm16,
        6 => WavEncoding::ALaw,
        7 => WavEncoding::MuLaw,
        tag => return Err(WavError::UnsupportedFormat { tag }),
    };
    let (want_bits, name) = match encoding {
        WavEncoding::Pcm16 => (16, "PCM"),
        WavEncoding::MuLaw => (8, "mu-law"),
        WavEncoding::ALaw => (8, "A-law"),
    };
    if format.bits != want_bits {
        return Err(WavError::UnsupportedBits {
            bits: format.bits,
            encoding: name,
        });
    }
    if format.rate != 8000 {
        return Err(WavError::UnsupportedRate { hz: format.rate });
    }
    if format.channels == 0 {
        return Err(WavError::NoChannels);
    }
    if channel >= format.channels {
        return Err(WavError::NoSuchChannel {
            channel,
            channels: format.channels,
        });
    }
    let channels = usize::from(format.channels);
    let samples = match encoding {
        WavEncoding::Pcm16 => {
            let reader = hound::WavReader::new(Cursor::new(bytes))
                .map_err(|e| WavError::Pcm(e.to_string()))?;
            reader
                .into_samples::<i16>()
                .skip(usize::from(channel))
                .step_by(channels)
                .collect::<Result<Vec<i16>, _>>()
                .map_err(|e| WavError::Pcm(e.to_string()))?
        }
        WavEncoding::MuLaw | WavEncoding::ALaw => {
            let law = if encoding == WavEncoding::MuLaw {
                Law::Mu
            } else {
                Law::A
            };
            let frame = usize::from(format.block_align.max(format.channels));
            let table = law.table();
            bytes[data_at..data_at + data_len]
                .chunks_exact(frame)
                .map(|f| table[usize::from(f[usize::from(channel)])])
                .collect()
        }
    };
    Ok(WavAudio {
        rate: format.rate,
        channels: format.channels,
        encoding,
        samples,
    })
}

/// Writes `samples` as a mono 8 kHz WAV file in `encoding` (for fixtures and tests).
pub fn write_wav(samples: &[i16], encoding: WavEncoding) -> Vec<u8> {
    let (tag, bits, body): (u16, u16, Vec<u8>) = match encoding {
        WavEncoding::Pcm16 => (
            1,
            16,
            samples.iter().flat_map(|s| s.to_le_bytes()).collect(),
        ),
        WavEncoding::MuLaw => (7, 8, samples.iter().map(|&s| Law::Mu.encode(s)).collect()),
        WavEncoding::ALaw => (6, 8, samples.iter().map(|&s| Law::A.encode(s)).collect()),
    };
    let align = bits / 8;
    let mut out = Vec::with_capacity(44 + body.len());
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(36 + body.len() as u32).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&tag.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&8000u32.to_le_bytes());
    out.extend_from_slice(&(8000 * u32::from(align)).to_le_bytes());
    out.extend_from_slice(&align.to_le_bytes());
    out.extend_from_slice(&bits.to_le_bytes());
    out.extend_from_slice(b"data");
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(&body);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn patch_u16(mut wav: Vec<u8>, at: usize, v: u16) -> Vec<u8> {
        wav[at..at + 2].copy_from_slice(&v.to_le_bytes());
        wav
    }

    fn patch_u32(mut wav: Vec<u8>, at: usize, v: u32) -> Vec<u8> {
        wav[at..at + 4].copy_from_slice(&v.to_le_bytes());
        wav
    }

    const SAMPLES: [i16; 6] = [0, 1000, -1000, 8000, -32000, 32000];

    #[test]
    fn pcm_mulaw_and_alaw_files_read_back() {
        let pcm = read_wav(&write_wav(&SAMPLES, WavEncoding::Pcm16), 0).unwrap();
        assert_eq!(pcm.samples, SAMPLES);
        assert_eq!(pcm.encoding, WavEncoding::Pcm16);
        for (enc, law) in [(WavEncoding::MuLaw, Law::Mu), (WavEncoding::ALaw, Law::A)] {
            let audio = read_wav(&write_wav(&SAMPLES, enc), 0).unwrap();
            let want: Vec<i16> = SAMPLES
                .iter()
                .map(|&s| law.table()[usize::from(law.encode(s))])
                .collect();
            assert_eq!(audio.samples, want, "{enc:?}");
        }
    }

    #[test]
    fn a_channel_of_a_stereo_mulaw_file_is_chosen() {
        // Two channels interleaved: left = SAMPLES, right = their negation.
        let mut wav = write_wav(&[0; 12], WavEncoding::MuLaw);
        wav = patch_u16(wav, 22, 2);
        wav = patch_u16(wav, 32, 2);
        for (i, s) in SAMPLES.iter().enumerate() {
            wav[44 + 2 * i] = Law::Mu.encode(*s);
            wav[44 + 2 * i + 1] = Law::Mu.encode(-*s);
        }
        let right = read_wav(&wav, 1).unwrap();
        assert_eq!(right.channels, 2);
        assert_eq!(right.samples.len(), 6);
        assert!(right.samples[1] < 0 && right.samples[2] > 0);
        assert_eq!(
            read_wav(&wav, 2).unwrap_err(),
            WavError::NoSuchChannel {
                channel: 2,
                channels: 2
            }
        );
    }

    #[test]
    fn bad_files_get_typed_errors() {
        let good = write_wav(&SAMPLES, WavEncoding::Pcm16);
        assert_eq!(read_wav(b"hello", 0).unwrap_err(), WavError::NotWav);
        assert_eq!(
            read_wav(&patch_u32(good.clone(), 24, 16000), 0).unwrap_err(),
            WavError::UnsupportedRate { hz: 16000 }
        );
        assert_eq!(
            read_wav(&patch_u16(good.clone(), 20, 3), 0).unwrap_err(),
            WavError::UnsupportedFormat { tag: 3 }
        );
        assert_eq!(
            read_wav(&patch_u16(good.clone(), 34, 24), 0).unwrap_err(),
            WavError::UnsupportedBits {
                bits: 24,
                encoding: "PCM"
            }
        );
        assert!(matches!(
            read_wav(&good[..good.len() - 3], 0).unwrap_err(),
            WavError::Truncated {
                what: "the data chunk",
                ..
            }
        ));
        assert!(matches!(
            read_wav(&good[..30], 0).unwrap_err(),
            WavError::Truncated {
                what: "the fmt chunk",
                ..
            }
        ));
        assert_eq!(
            read_wav(&good[..36], 0).unwrap_err(),
            WavError::MissingChunk("data")
        );
        assert_eq!(
            read_wav(&patch_u16(good, 22, 0), 0).unwrap_err(),
            WavError::NoChannels
        );
    }
}
