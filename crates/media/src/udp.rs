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

/// Finds the UDP datagram in `frame`. `Ok(None)` for frames that are not UDP over IP (ARP,
/// TCP, ICMP, ...), which are simply not RTP.
pub fn udp_datagram(link: LinkType, frame: &[u8]) -> Result<Option<Datagram<'_>>, FrameError> {
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
