//! Datagrams as captured frames, for [`tonegate_media::replay::Replay`]: raw IPv4 + UDP
//! (`LINKTYPE_RAW`), with capture timestamps.

use std::net::SocketAddrV4;
use std::time::Duration;

use etherparse::PacketBuilder;

/// A raw IPv4 + UDP packet from `source` to `destination` carrying `payload`.
pub fn udp_frame(source: SocketAddrV4, destination: SocketAddrV4, payload: &[u8]) -> Vec<u8> {
    let builder = PacketBuilder::ipv4(source.ip().octets(), destination.ip().octets(), 64)
        .udp(source.port(), destination.port());
    let mut frame = Vec::with_capacity(builder.size(payload.len()));
    builder
        .write(&mut frame, payload)
        .expect("writing to a Vec cannot fail");
    frame
}

/// A capture timestamp: a fixed epoch (2026-11-01) plus `at`.
pub fn timestamp(at: Duration) -> Duration {
    Duration::from_secs(1_793_491_200) + at
}
