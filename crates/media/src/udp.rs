//! Finding UDP datagrams in captured frames, whatever the link layer: Ethernet (with 802.1Q
//! VLAN tags), Linux cooked capture v1 (SLL) and v2 (SLL2), raw IP, BSD loopback; IPv4 and
//! IPv6. Header parsing is etherparse's; this module only picks the entry point per link type.

use std::net::{IpAddr, SocketAddr};

use etherparse::{EtherType, NetSlice, SlicedPacket, TransportSlice};
use thiserror::Error;

/// Link types (the pcap `LINKTYPE_*` numbers) this reader understands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkType {
    /// `LINKTYPE_NULL` (0): BSD loopback, a 4-byte address family in host order.
    Null,
    /// `LINKTYPE_ETHERNET` (1), with or without 802.1Q/802.1ad tags.
    Ethernet,
    /// `LINKTYPE_RAW` (101, and 12/14 as some systems write it): the frame is an IP packet.
    RawIp,
    /// `LINKTYPE_IPV4` (228).
    Ipv4,
    /// `LINKTYPE_IPV6` (229).
    Ipv6,
    /// `LINKTYPE_LINUX_SLL` (113), what `tcpdump -i any` wrote before libpcap 1.10.
    LinuxSll,
    /// `LINKTYPE_LINUX_SLL2` (276), what `tcpdump -i any` writes now.
    LinuxSll2,
}

impl LinkType {
    /// The link type for a pcap `LINKTYPE_*` number, or `None` if it is not supported.
    pub fn from_pcap(linktype: i32) -> Option<LinkType> {
        Some(match linktype {
            0 => LinkType::Null,
            1 => LinkType::Ethernet,
            12 | 14 | 101 => LinkType::RawIp,
            228 => LinkType::Ipv4,
            229 => LinkType::Ipv6,
            113 => LinkType::LinuxSll,
            276 => LinkType::LinuxSll2,
            _ => return None,
        })
    }
}

/// A UDP datagram found in a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Datagram<'a> {
    /// Sender.
    pub source: SocketAddr,
    /// Receiver.
    pub destination: SocketAddr,
    /// The UDP payload.
    pub payload: &'a [u8],
}

/// Why a frame holds no usable UDP datagram.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum FrameError {
    /// Headers that do not parse (truncated by the snap length, corrupt, ...).
    #[error("malformed headers: {0}")]
    Malformed(String),
    /// A fragment of a fragmented IP packet; fragments are not reassembled.
    #[error("IP fragment (not reassembled)")]
    Fragment,
}

/// The overwhelmingly common frame of a media capture, Ethernet II + IPv4 without options or
/// fragmentation + UDP, read directly: profiling a 1 GiB replay showed the general slicer as
/// the largest single cost. Anything else (VLAN tags, IPv6, options, fragments, lengths that
/// do not add up) returns `None` and goes through etherparse, which also gives the errors.
fn plain_ethernet_ipv4_udp(frame: &[u8]) -> Option<Datagram<'_>> {
    let ip = frame.get(14..34)?;
    if frame[12..14] != [0x08, 0x00] || ip[0] != 0x45 || ip[9] != 17 {
        return None;
    }
    // More-fragments flag or a fragment offset: leave it to the general path.
    if u16::from_be_bytes([ip[6], ip[7]]) & 0x3FFF != 0 {
        return None;
    }
    let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
    let udp = frame.get(34..14 + total)?;
    let udp_len = usize::from(u16::from_be_bytes([udp[4], udp[5]]));
    if udp_len < 8 || udp_len > udp.len() {
        return None;
    }
    let src = std::net::Ipv4Addr::new(ip[12], ip[13], ip[14], ip[15]);
    let dst = std::net::Ipv4Addr::new(ip[16], ip[17], ip[18], ip[19]);
    Some(Datagram {
        source: SocketAddr::new(src.into(), u16::from_be_bytes([udp[0], udp[1]])),
        destination: SocketAddr::new(dst.into(), u16::from_be_bytes([udp[2], udp[3]])),
        payload: &udp[8..udp_len],
    })
}

/// Finds the UDP datagram in `frame`. `Ok(None)` for frames that are not UDP over IP (ARP,
/// TCP, ICMP, ...), which are simply not RTP.
pub fn udp_datagram(link: LinkType, frame: &[u8]) -> Result<Option<Datagram<'_>>, FrameError> {
    if link == LinkType::Ethernet {
        if let Some(datagram) = plain_ethernet_ipv4_udp(frame) {
            return Ok(Some(datagram));
        }
    }
    let sliced = match link {
        LinkType::Ethernet => SlicedPacket::from_ethernet(frame),
        LinkType::RawIp | LinkType::Ipv4 | LinkType::Ipv6 => SlicedPacket::from_ip(frame),
        LinkType::LinuxSll => SlicedPacket::from_linux_sll(frame),
        LinkType::LinuxSll2 => {
            // SLL2: protocol type (2), reserved (2), interface index (4), ARPHRD type (2),
            // packet type (1), address length (1), address (8).
            let Some(header) = frame.get(..20) else {
                return Err(FrameError::Malformed(format!(
                    "Linux SLL2 header needs 20 bytes, frame has {}",
                    frame.len()
                )));
            };
            let ether_type = EtherType(u16::from_be_bytes([header[0], header[1]]));
            SlicedPacket::from_ether_type(ether_type, &frame[20..])
        }
        LinkType::Null => {
            if frame.len() < 4 {
                return Err(FrameError::Malformed(
                    "loopback header needs 4 bytes".into(),
                ));
            }
            SlicedPacket::from_ip(&frame[4..])
        }
    }
    .map_err(|e| FrameError::Malformed(e.to_string()))?;
    if sliced.is_ip_payload_fragmented() {
        return Err(FrameError::Fragment);
    }
    let (Some(net), Some(TransportSlice::Udp(udp))) = (&sliced.net, &sliced.transport) else {
        return Ok(None);
    };
    let (src, dst): (IpAddr, IpAddr) = match net {
        NetSlice::Ipv4(v4) => (
            v4.header().source_addr().into(),
            v4.header().destination_addr().into(),
        ),
        NetSlice::Ipv6(v6) => (
            v6.header().source_addr().into(),
            v6.header().destination_addr().into(),
        ),
        NetSlice::Arp(_) => return Ok(None),
    };
    Ok(Some(Datagram {
        source: SocketAddr::new(src, udp.source_port()),
        destination: SocketAddr::new(dst, udp.destination_port()),
        payload: udp.payload(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::PacketBuilder;

    fn frames() -> Vec<Vec<u8>> {
        let payload = [0x80u8, 0, 0, 1, 0, 0, 0, 160, 0, 0, 0, 7, 1, 2, 3];
        let mut out = Vec::new();
        let v4 = PacketBuilder::ethernet2([2; 6], [4; 6])
            .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
            .udp(4000, 5000);
        let mut f = Vec::new();
        v4.write(&mut f, &payload).unwrap();
        out.push(f.clone());
        // Ethernet padding after a short datagram must not leak into the payload.
        f.extend_from_slice(&[0; 6]);
        out.push(f);
        let vlan = PacketBuilder::ethernet2([2; 6], [4; 6])
            .single_vlan(100.try_into().unwrap())
            .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
            .udp(4000, 5000);
        let mut f = Vec::new();
        vlan.write(&mut f, &payload).unwrap();
        out.push(f);
        let v6 = PacketBuilder::ethernet2([2; 6], [4; 6])
            .ipv6([1; 16], [2; 16], 64)
            .udp(4000, 5000);
        let mut f = Vec::new();
        v6.write(&mut f, &payload).unwrap();
        out.push(f);
        out
    }

    #[test]
    fn the_fast_path_agrees_with_etherparse() {
        for frame in frames() {
            let general = SlicedPacket::from_ethernet(&frame).unwrap();
            let Some(TransportSlice::Udp(udp)) = general.transport else {
                panic!("not udp")
            };
            let found = udp_datagram(LinkType::Ethernet, &frame).unwrap().unwrap();
            assert_eq!(found.payload, udp.payload());
            assert_eq!(found.source.port(), 4000);
            assert_eq!(found.destination.port(), 5000);
        }
        // Truncated inside the UDP payload: refused, not misread.
        let mut cut = frames().remove(0);
        cut.truncate(cut.len() - 4);
        assert!(plain_ethernet_ipv4_udp(&cut).is_none());
        assert!(udp_datagram(LinkType::Ethernet, &cut).is_err());
    }
}
