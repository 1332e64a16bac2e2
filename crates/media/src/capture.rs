//! Reading pcap and pcapng captures from memory, frame by frame, with errors that say where.
//!
//! Block and record parsing is pcap-parser's; this module walks the file, keeps the pcapng
//! interfaces (link type, timestamp resolution), and turns every way a file can be wrong into
//! a [`CaptureError`] naming the byte offset and frame number. A capture damaged in the middle
//! yields its good frames first, then the error: replay reports what came before the damage.

use std::time::Duration;

use pcap_parser::nom;
use pcap_parser::pcapng::{parse_block_be, parse_block_le, parse_sectionheaderblock, Block};
use pcap_parser::{
    parse_pcap_frame, parse_pcap_frame_be, parse_pcap_frame_modified, parse_pcap_header, PcapError,
};
use thiserror::Error;

use crate::udp::LinkType;

/// Records longer than this are treated as damage rather than data (libpcap's own limit for
/// most link types is 262144 bytes).
const MAX_RECORD: u32 = 16 * 1024 * 1024;

/// One captured frame.
#[derive(Clone, Copy, Debug)]
pub struct Frame<'a> {
    /// Position of the frame in the capture, from 1 (as Wireshark numbers them).
    pub number: u64,
    /// Capture timestamp, since the Unix epoch.
    pub timestamp: Duration,
    /// The frame's link layer.
    pub link: LinkType,
    /// The captured bytes (possibly cut by the snap length).
    pub data: &'a [u8],
}

/// What is wrong with a capture file.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum CaptureError {
    /// The file does not start like a pcap or pcapng capture.
    #[error("not a pcap or pcapng capture: it starts with bytes {start}")]
    NotACapture {
        /// The first bytes of the file, in hex.
        start: String,
    },
    /// A link type tonegate cannot read.
    #[error(
        "unsupported link type {linktype}: tonegate reads Ethernet (1), Linux cooked SLL (113) \
         and SLL2 (276), raw IP (101) and BSD loopback (0)"
    )]
    UnsupportedLinkType {
        /// The pcap `LINKTYPE_*` number.
        linktype: i32,
    },
    /// The file ends in the middle of a record.
    #[error("capture is truncated: frame {frame} at byte {offset} is incomplete")]
    Truncated {
        /// Number of the frame that is cut off.
        frame: u64,
        /// Byte offset where that record starts.
        offset: u64,
    },
    /// A record or block that cannot be parsed.
    #[error("capture is damaged at byte {offset} (frame {frame}): {reason}")]
    Damaged {
        /// Number of the frame at which reading stopped.
        frame: u64,
        /// Byte offset of the damaged record.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
}

#[derive(Clone, Copy, Debug)]
struct Interface {
    link: Result<LinkType, i32>,
    /// Timestamp units per second.
    resolution: u64,
    offset_secs: i64,
}

#[derive(Debug)]
enum Format {
    Pcap {
        big_endian: bool,
        modified: bool,
        nanos: bool,
        link: LinkType,
    },
    PcapNg {
        big_endian: bool,
        interfaces: Vec<Interface>,
    },
}

/// Iterates over the frames of a capture held in memory (read or memory-mapped).
#[derive(Debug)]
pub struct CaptureReader<'a> {
    data: &'a [u8],
    pos: usize,
    format: Format,
    frames: u64,
    failed: bool,
}

impl<'a> CaptureReader<'a> {
    /// Recognises the capture format from its header.
    pub fn new(data: &'a [u8]) -> Result<CaptureReader<'a>, CaptureError> {
        let not_a_capture = || CaptureError::NotACapture {
            start: data
                .iter()
                .take(8)
                .map(|b| format!("{b:02x}"))
                .collect::<Vec<_>>()
                .join(" "),
        };
        if data.len() >= 4 && data[..4] == [0x0a, 0x0d, 0x0d, 0x0a] {
            let reader = CaptureReader {
                data,
                pos: 0,
                format: Format::PcapNg {
                    big_endian: false,
                    interfaces: Vec::new(),
                },
                frames: 0,
                failed: false,
            };
            if parse_sectionheaderblock(data).is_err() {
                return Err(not_a_capture());
            }
            return Ok(reader);
        }
        let (rest, header) = parse_pcap_header(data).map_err(|_| not_a_capture())?;
        let link =
            LinkType::from_pcap(header.network.0).ok_or(CaptureError::UnsupportedLinkType {
                linktype: header.network.0,
            })?;
        Ok(CaptureReader {
            data,
            pos: data.len() - rest.len(),
            format: Format::Pcap {
                big_endian: header.is_bigendian(),
                modified: header.is_modified_format(),
                nanos: header.is_nanosecond_precision(),
                link,
            },
            frames: 0,
            failed: false,
        })
    }

    /// Bytes consumed so far (for progress reporting).
    pub fn position(&self) -> usize {
        self.pos
    }

    fn fail(&mut self, err: nom::Err<PcapError<&[u8]>>) -> CaptureError {
        self.failed = true;
        let frame = self.frames + 1;
        let offset = self.pos as u64;
        match err {
            nom::Err::Incomplete(_)
            | nom::Err::Error(PcapError::Incomplete(_) | PcapError::UnexpectedEof)
            | nom::Err::Failure(PcapError::Incomplete(_) | PcapError::UnexpectedEof) => {
                CaptureError::Truncated { frame, offset }
            }
            nom::Err::Error(e) | nom::Err::Failure(e) => CaptureError::Damaged {
                frame,
                offset,
                reason: describe(&e),
            },
        }
    }

    fn next_pcap(&mut self) -> Option<Result<Frame<'a>, CaptureError>> {
        let Format::Pcap {
            big_endian,
            modified,
            nanos,
            link,
        } = self.format
        else {
            unreachable!("called for pcap only")
        };
        let input = &self.data[self.pos..];
        if input.is_empty() {
            return None;
        }
        if input.len() >= 16 {
            let caplen = if big_endian {
                u32::from_be_bytes([input[8], input[9], input[10], input[11]])
            } else {
                u32::from_le_bytes([input[8], input[9], input[10], input[11]])
            };
            if caplen > MAX_RECORD {
                self.failed = true;
                return Some(Err(CaptureError::Damaged {
                    frame: self.frames + 1,
                    offset: self.pos as u64,
                    reason: format!("record claims {caplen} bytes, more than any real frame"),
                }));
            }
        }
        let parsed = if modified {
            parse_pcap_frame_modified(input)
        } else if big_endian {
            parse_pcap_frame_be(input)
        } else {
            parse_pcap_frame(input)
        };
        match parsed {
            Ok((rest, block)) => {
                self.pos = self.data.len() - rest.len();
                self.frames += 1;
                let sub = if nanos {
                    Duration::from_nanos(u64::from(block.ts_usec))
                } else {
                    Duration::from_micros(u64::from(block.ts_usec))
                };
                Some(Ok(Frame {
                    number: self.frames,
                    timestamp: Duration::from_secs(u64::from(block.ts_sec)) + sub,
                    link,
                    data: block.data,
                }))
            }
            Err(e) => Some(Err(self.fail(e))),
        }
    }

    fn next_pcapng(&mut self) -> Option<Result<Frame<'a>, CaptureError>> {
        loop {
            let input = &self.data[self.pos..];
            if input.is_empty() {
                return None;
            }
            let Format::PcapNg { big_endian, .. } = self.format else {
                unreachable!("called for pcapng only")
            };
            let parsed = if input.len() >= 4 && input[..4] == [0x0a, 0x0d, 0x0d, 0x0a] {
                parse_sectionheaderblock(input).map(|(r, b)| (r, Block::SectionHeader(b)))
            } else if big_endian {
                parse_block_be(input)
            } else {
                parse_block_le(input)
            };
            let (rest, block) = match parsed {
                Ok(ok) => ok,
                Err(e) => return Some(Err(self.fail(e))),
            };
            let block_at = self.pos;
            self.pos = self.data.len() - rest.len();
            let Format::PcapNg {
                big_endian,
                interfaces,
            } = &mut self.format
            else {
                unreachable!("called for pcapng only")
            };
            let (if_id, ticks, data) = match block {
                Block::SectionHeader(shb) => {
                    *big_endian = shb.big_endian();
                    interfaces.clear();
                    continue;
                }
                Block::InterfaceDescription(idb) => {
                    interfaces.push(Interface {
                        link: LinkType::from_pcap(idb.linktype.0).ok_or(idb.linktype.0),
                        resolution: idb.ts_resolution().unwrap_or(1_000_000),
                        offset_secs: idb.ts_offset(),
                    });
                    continue;
                }
                Block::EnhancedPacket(epb) => (
                    epb.if_id as usize,
                    (u64::from(epb.ts_high) << 32) | u64::from(epb.ts_low),
                    epb.data,
                ),
                // A simple packet block has no timestamp; it belongs to interface 0.
                Block::SimplePacket(spb) => (0, 0, spb.data),
                _ => continue,
            };
            self.frames += 1;
            let Some(iface) = interfaces.get(if_id).copied() else {
                self.failed = true;
                return Some(Err(CaptureError::Damaged {
                    frame: self.frames,
                    offset: block_at as u64,
                    reason: format!("packet on interface {if_id}, which no block describes"),
                }));
            };
            let link = match iface.link {
                Ok(link) => link,
                Err(linktype) => {
                    self.failed = true;
                    return Some(Err(CaptureError::UnsupportedLinkType { linktype }));
                }
            };
            let secs = ticks / iface.resolution;
            let frac = ticks % iface.resolution;
            let nanos = (u128::from(frac) * 1_000_000_000 / u128::from(iface.resolution)) as u64;
            let base = Duration::from_secs(secs) + Duration::from_nanos(nanos);
            let timestamp = if iface.offset_secs >= 0 {
                base + Duration::from_secs(iface.offset_secs as u64)
            } else {
                base.saturating_sub(Duration::from_secs(iface.offset_secs.unsigned_abs()))
            };
            return Some(Ok(Frame {
                number: self.frames,
                timestamp,
                link,
                data,
            }));
        }
    }
}

fn describe(e: &PcapError<&[u8]>) -> String {
    match e {
        PcapError::NomError(_, kind) | PcapError::OwnedNomError(_, kind) => {
            format!("record does not parse ({kind:?})")
        }
        PcapError::HeaderNotRecognized => "unrecognised block or header".into(),
        other => format!("{other:?}"),
    }
}

impl<'a> Iterator for CaptureReader<'a> {
    type Item = Result<Frame<'a>, CaptureError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        match self.format {
            Format::Pcap { .. } => self.next_pcap(),
            Format::PcapNg { .. } => self.next_pcapng(),
        }
    }
}
