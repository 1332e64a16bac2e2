//! RFC 2198 redundant audio data ("red"): unwrapping the blocks of one packet.
//!
//! Senders protect telephone-events against loss by repeating earlier event payloads in every
//! packet. A red payload is a list of headers, then the blocks in the same order, the primary
//! (newest) block last:
//!
//! ```text
//! redundant header: |F=1|  block PT (7)  |      timestamp offset (14)      | block length (10) |
//! primary header:   |F=0|  block PT (7)  |
//! ```
//!
//! A redundant block's RTP timestamp is the packet's minus its offset. Blocks repeat what
//! earlier packets said, so the decoder must treat them as possibly-late copies; see
//! [`crate::rfc4733`] for how they are de-duplicated.

use thiserror::Error;

/// A block carried in a red payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RedBlock<'a> {
    /// Payload type of the block (for example the telephone-event payload type).
    pub payload_type: u8,
    /// How far before the packet's timestamp this block's timestamp is (0 for the primary).
    pub timestamp_offset: u16,
    /// Whether this is the primary (newest) block.
    pub primary: bool,
    /// The block's payload.
    pub data: &'a [u8],
}

/// Why a red payload could not be unwrapped.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum RedError {
    /// The payload ended inside the list of block headers.
    #[error("RFC 2198 payload ends inside its block headers (payload is {len} bytes)")]
    TruncatedHeaders {
        /// Payload length in bytes.
        len: usize,
    },
    /// The blocks' declared lengths do not fit in the payload.
    #[error(
        "RFC 2198 block lengths add up to {declared} bytes but only {available} follow the headers"
    )]
    BlocksOverrun {
        /// Sum of the redundant block lengths declared in the headers.
        declared: usize,
        /// Bytes present after the headers.
        available: usize,
    },
}

/// Unwraps a red payload into its blocks, oldest first, the primary last. At most
/// `MAX_BLOCKS` redundant blocks are returned; further headers make the payload invalid.
pub fn unwrap_red(payload: &[u8]) -> Result<RedBlocks<'_>, RedError> {
    let mut headers = [(0u8, 0u16, 0usize); MAX_BLOCKS];
    let mut n = 0;
    let mut pos = 0;
    loop {
        let Some(&first) = payload.get(pos) else {
            return Err(RedError::TruncatedHeaders { len: payload.len() });
        };
        if first & 0x80 == 0 {
            pos += 1;
            break;
        }
        let Some(h) = payload.get(pos..pos + 4) else {
            return Err(RedError::TruncatedHeaders { len: payload.len() });
        };
        if n == MAX_BLOCKS {
            return Err(RedError::TruncatedHeaders { len: payload.len() });
        }
        let offset = (u16::from(h[1]) << 6) | (u16::from(h[2]) >> 2);
        let len = (usize::from(h[2] & 0x03) << 8) | usize::from(h[3]);
        headers[n] = (h[0] & 0x7F, offset, len);
        n += 1;
        pos += 4;
    }
    let primary_pt = payload[pos - 1] & 0x7F;
    let body = &payload[pos..];
    let declared: usize = headers[..n].iter().map(|h| h.2).sum();
    if declared > body.len() {
        return Err(RedError::BlocksOverrun {
            declared,
            available: body.len(),
        });
    }
    let mut blocks = RedBlocks {
        blocks: [None; MAX_BLOCKS + 1],
        len: 0,
    };
    let mut at = 0;
    for &(payload_type, timestamp_offset, len) in &headers[..n] {
        blocks.push(RedBlock {
            payload_type,
            timestamp_offset,
            primary: false,
            data: &body[at..at + len],
        });
        at += len;
    }
    blocks.push(RedBlock {
        payload_type: primary_pt,
        timestamp_offset: 0,
        primary: true,
        data: &body[at..],
    });
    Ok(blocks)
}

/// Most redundant blocks accepted in one packet (RFC 2198 allows more in theory; senders of
/// telephone-events use 1 to 3). A fixed bound keeps unwrapping allocation-free.
pub const MAX_BLOCKS: usize = 8;

/// The blocks of one red payload, oldest first; iterate with [`RedBlocks::iter`].
#[derive(Clone, Debug)]
pub struct RedBlocks<'a> {
    blocks: [Option<RedBlock<'a>>; MAX_BLOCKS + 1],
    len: usize,
}

impl<'a> RedBlocks<'a> {
    fn push(&mut self, block: RedBlock<'a>) {
        self.blocks[self.len] = Some(block);
        self.len += 1;
    }

    /// The blocks, oldest first, primary last.
    pub fn iter(&self) -> impl Iterator<Item = &RedBlock<'a>> {
        self.blocks[..self.len].iter().flatten()
    }
}

/// Builds a red payload (used by tests and the fixture tools): `redundant` blocks as
/// `(payload type, timestamp offset, data)`, oldest first, then the primary.
pub fn wrap_red(redundant: &[(u8, u16, &[u8])], primary_pt: u8, primary: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for &(pt, offset, data) in redundant {
        let len = data.len() as u16;
        out.push(0x80 | (pt & 0x7F));
        out.push((offset >> 6) as u8);
        out.push((((offset & 0x3F) << 2) as u8) | ((len >> 8) as u8 & 0x03));
        out.push(len as u8);
    }
    out.push(primary_pt & 0x7F);
    for &(_, _, data) in redundant {
        out.extend_from_slice(data);
    }
    out.extend_from_slice(primary);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_come_out_oldest_first_with_their_offsets() {
        let payload = wrap_red(
            &[
                (101, 320, &[1, 0x0a, 0, 160]),
                (101, 160, &[1, 0x0a, 1, 64]),
            ],
            101,
            &[1, 0x8a, 1, 224],
        );
        let blocks = unwrap_red(&payload).unwrap();
        let got: Vec<_> = blocks
            .iter()
            .map(|b| {
                (
                    b.payload_type,
                    b.timestamp_offset,
                    b.primary,
                    b.data.to_vec(),
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                (101, 320, false, vec![1, 0x0a, 0, 160]),
                (101, 160, false, vec![1, 0x0a, 1, 64]),
                (101, 0, true, vec![1, 0x8a, 1, 224]),
            ]
        );
    }

    #[test]
    fn damaged_payloads_are_refused_with_the_reason() {
        assert_eq!(
            unwrap_red(&[0x80 | 101, 0]).unwrap_err(),
            RedError::TruncatedHeaders { len: 2 }
        );
        let mut payload = wrap_red(&[(101, 160, &[1, 2, 3, 4])], 101, &[]);
        payload.truncate(payload.len() - 2);
        assert_eq!(
            unwrap_red(&payload).unwrap_err(),
            RedError::BlocksOverrun {
                declared: 4,
                available: 2
            }
        );
        assert!(unwrap_red(&[]).is_err());
    }
}
