//! RTP packets (RFC 3550) as a sender writes them: version 2, no padding, extension or CSRCs,
//! the fields the tests choose. The payload is the caller's (audio, a telephone-event, junk).

use rtp_types::RtpPacketBuilder;

/// An RTP packet of payload type `pt` (the marker bit set when `marker`), sequence number
/// `seq`, timestamp `ts`, SSRC `ssrc` carrying `payload`.
pub fn packet(pt: u8, marker: bool, seq: u16, ts: u32, ssrc: u32, payload: &[u8]) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(12 + payload.len());
    write(&mut bytes, pt, marker, seq, ts, ssrc, payload);
    bytes
}

/// [`packet`], appended to `buf` (for senders that reuse one buffer per packet).
pub fn write(
    buf: &mut Vec<u8>,
    pt: u8,
    marker: bool,
    seq: u16,
    ts: u32,
    ssrc: u32,
    payload: &[u8],
) {
    RtpPacketBuilder::<&[u8], &[u8]>::new()
        .payload_type(pt)
        .marker_bit(marker)
        .sequence_number(seq)
        .timestamp(ts)
        .ssrc(ssrc)
        .payload(payload)
        .write_into_vec(buf)
        .expect("a valid RTP packet (payload type below 128)");
}
