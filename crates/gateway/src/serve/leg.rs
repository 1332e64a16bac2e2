//! One leg of a call as the call task sees it: the socket the leg sends to, the source it is
//! latched to, where tonegate sends to it, and what it sent.
//!
//! Latching (anchored calls, the ng protocol): the first source heard on the socket is the
//! leg's, and a datagram from any other source is refused (counted, never heard or forwarded),
//! so nobody who learns the port can inject key presses or audio into the call. Until the leg
//! is heard, tonegate sends to the address its SDP gave; once latched, to the latched source
//! (symmetric RTP: a leg behind NAT is reached where it really is). A new SDP address for the
//! leg (a re-INVITE moving it) lets it be learnt again. HTTP-created calls do not latch.
//!
//! RTCP (anchored calls): a leg that muxes (RFC 5761) sends and gets its RTCP on the RTP
//! socket. One that does not has its own RTCP socket, on the RTP port + 1, latched the same
//! way and on its own: tonegate sends the leg's RTCP to the latched source, else to where its
//! SDP said (`a=rtcp:`, else the RTP port + 1).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::SystemTime;

use tokio::net::UdpSocket;
use tonegate_media::extend::SeqExtender;

/// Streams (SSRCs) a leg's loss is counted for; a leg that changes SSRC more often than this is
/// counted on the first ones only.
const MAX_STREAMS: usize = 8;

/// One leg. See the module docs.
pub(super) struct Leg {
    pub(super) socket: UdpSocket,
    latching: bool,
    latched: Option<SocketAddr>,
    advertised: Option<SocketAddr>,
    rtcp: Option<RtcpPort>,
    counters: LegCounters,
}

/// A leg's RTCP socket (anchored calls), when the leg does not mux.
struct RtcpPort {
    socket: UdpSocket,
    latched: Option<SocketAddr>,
    advertised: Option<SocketAddr>,
    /// Whether the leg muxes: its RTCP then goes to and from the RTP socket.
    mux: bool,
}

/// What became of a datagram a leg's socket received.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Heard {
    /// From the leg: hear it, relay it.
    Accepted,
    /// From the leg, but neither RTP nor RTCP (counted as refused).
    NotMedia,
    /// From another source than the one the leg is latched to: refused.
    Foreign,
}

/// A leg's counters, for the ng `query`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct LegStats {
    /// tonegate's socket for the leg.
    pub(super) local: Option<SocketAddr>,
    /// Where tonegate sends to the leg (latched, else advertised).
    pub(super) endpoint: Option<SocketAddr>,
    /// The address the leg's SDP gave.
    pub(super) advertised: Option<SocketAddr>,
    /// RTP packets accepted.
    pub(super) packets: u64,
    /// Their bytes (RTP and RTCP, on either socket, UDP payloads).
    pub(super) bytes: u64,
    /// RTCP packets accepted (on the RTP socket, muxed, or on the RTCP socket).
    pub(super) rtcp: u64,
    /// Packets missing from the sequence-number ranges.
    pub(super) lost: u64,
    /// Datagrams refused: from a foreign source, or not RTP or RTCP.
    pub(super) refused: u64,
    /// Of those, from a foreign source.
    pub(super) foreign: u64,
    /// When the last datagram was accepted.
    pub(super) last_packet: Option<SystemTime>,
}

#[derive(Default)]
struct LegCounters {
    stats: LegStats,
    streams: HashMap<u32, StreamLoss>,
}

struct StreamLoss {
    seq: SeqExtender,
    lowest: u64,
    received: u64,
}

impl Leg {
    /// A leg on `socket`; `latching` for anchored calls; `advertised`, its SDP address.
    pub(super) fn new(socket: UdpSocket, latching: bool, advertised: Option<SocketAddr>) -> Leg {
        Leg {
            socket,
            latching,
            latched: None,
            advertised,
            rtcp: None,
            counters: LegCounters::default(),
        }
    }

    /// The leg with its RTCP socket (anchored calls): `advertised`, where its SDP says it
    /// receives RTCP; `mux`, whether it muxes RTCP on the RTP port instead.
    pub(super) fn with_rtcp(
        mut self,
        socket: UdpSocket,
        advertised: Option<SocketAddr>,
        mux: bool,
    ) -> Leg {
        self.rtcp = Some(RtcpPort {
            socket,
            latched: None,
            advertised,
            mux,
        });
        self
    }

    /// The leg's RTCP socket, if it has one.
    pub(super) fn rtcp_socket(&self) -> Option<&UdpSocket> {
        self.rtcp.as_ref().map(|r| &r.socket)
    }

    /// Whether a datagram from `from` on the RTCP socket is the leg's RTCP; counts it. Only
    /// RTCP is accepted there.
    pub(super) fn heard_rtcp(&mut self, from: SocketAddr, datagram: &[u8]) -> Heard {
        let Some(rtcp) = self.rtcp.as_mut() else {
            return Heard::NotMedia;
        };
        if !latch(&mut rtcp.latched, from, &mut self.counters.stats) {
            return Heard::Foreign;
        }
        if !is_rtcp(datagram) {
            self.counters.stats.refused += 1;
            return Heard::NotMedia;
        }
        self.counters.count(datagram);
        Heard::Accepted
    }

    /// Where and through which socket tonegate sends the leg RTCP: the RTP socket and
    /// endpoint when the leg muxes (or has no RTCP socket), else the RTCP socket to the
    /// latched RTCP source, else to the RTCP address of its SDP.
    pub(super) fn rtcp_route(&self) -> Option<(&UdpSocket, SocketAddr)> {
        match &self.rtcp {
            Some(rtcp) if !rtcp.mux => Some((&rtcp.socket, rtcp.latched.or(rtcp.advertised)?)),
            _ => Some((&self.socket, self.endpoint()?)),
        }
    }

    /// The leg's SDP gives where it receives RTCP and whether it muxes. A new address opens
    /// the RTCP latch again, as [`Leg::advertise`] does for RTP.
    pub(super) fn advertise_rtcp(&mut self, address: Option<SocketAddr>, mux: bool) {
        if let Some(rtcp) = self.rtcp.as_mut() {
            rtcp.mux = mux;
            if address != rtcp.advertised {
                if rtcp.advertised.is_some() {
                    rtcp.latched = None;
                }
                rtcp.advertised = address;
            }
        }
    }

    /// The answer to the leg's offer says whether RTCP is muxed: only if both sides say so.
    pub(super) fn answered_rtcp_mux(&mut self, mux: bool) {
        if let Some(rtcp) = self.rtcp.as_mut() {
            rtcp.mux &= mux;
        }
    }

    /// Whether a datagram from `from` is the leg's; counts it.
    pub(super) fn heard(&mut self, from: SocketAddr, datagram: &[u8]) -> Heard {
        if self.latching && !latch(&mut self.latched, from, &mut self.counters.stats) {
            return Heard::Foreign;
        }
        if self.counters.count(datagram) {
            Heard::Accepted
        } else {
            Heard::NotMedia
        }
    }

    /// Where tonegate sends to the leg: its latched source, else its SDP address.
    pub(super) fn endpoint(&self) -> Option<SocketAddr> {
        self.latched.or(self.advertised)
    }

    /// The leg's SDP gave `address`. A different address than an earlier SDP's (the leg
    /// moved) lets the leg be latched again, at its next datagram; a first address does not
    /// (the callee's early media may have latched its leg before its answer reached tonegate).
    pub(super) fn advertise(&mut self, address: Option<SocketAddr>) {
        if address != self.advertised {
            let moved = self.advertised.is_some();
            self.advertised = address;
            if moved {
                self.latched = None;
            }
        }
    }

    /// RTP packets accepted so far.
    pub(super) fn packets(&self) -> u64 {
        self.counters.stats.packets
    }

    /// The leg's counters now.
    pub(super) fn stats(&self) -> LegStats {
        LegStats {
            local: self.socket.local_addr().ok(),
            endpoint: self.endpoint(),
            advertised: self.advertised,
            lost: self.counters.lost(),
            ..self.counters.stats.clone()
        }
    }
}

/// An RTCP datagram (RFC 3550 §6.4): version 2, a packet type of 192 to 223 (the range RFC 5761
/// keeps apart from RTP's), at least a header.
fn is_rtcp(datagram: &[u8]) -> bool {
    datagram.len() >= 8 && datagram[0] >> 6 == 2 && (192..=223).contains(&datagram[1])
}

impl LegCounters {
    /// Counts a datagram; whether it is RTP or RTCP.
    fn count(&mut self, datagram: &[u8]) -> bool {
        let s = &mut self.stats;
        if datagram.len() < 8 || datagram[0] >> 6 != 2 {
            s.refused += 1;
            return false;
        }
        let rtcp = (192..=223).contains(&datagram[1]);
        if !rtcp && datagram.len() < 12 {
            s.refused += 1;
            return false;
        }
        s.bytes += datagram.len() as u64;
        s.last_packet = Some(SystemTime::now());
        if rtcp {
            s.rtcp += 1;
            return true;
        }
        s.packets += 1;
        let ssrc = u32::from_be_bytes([datagram[8], datagram[9], datagram[10], datagram[11]]);
        let seq = u32::from(u16::from_be_bytes([datagram[2], datagram[3]]));
        if !self.streams.contains_key(&ssrc) && self.streams.len() >= MAX_STREAMS {
            return true;
        }
        let stream = self.streams.entry(ssrc).or_insert_with(|| StreamLoss {
            seq: SeqExtender::new(),
            lowest: u64::MAX,
            received: 0,
        });
        let extended = stream.seq.extend(seq);
        stream.lowest = stream.lowest.min(extended);
        stream.received += 1;
        true
    }

    /// RFC 3550 cumulative loss over the streams: expected minus received, never negative.
    fn lost(&self) -> u64 {
        self.streams
            .values()
            .map(|s| {
                let expected = s.seq.highest().map_or(0, |h| h - s.lowest + 1);
                expected.saturating_sub(s.received)
            })
            .sum()
    }
}

/// Latches to the first source: whether `from` is it (a datagram from another is counted as
/// foreign and refused).
fn latch(latched: &mut Option<SocketAddr>, from: SocketAddr, stats: &mut LegStats) -> bool {
    match *latched {
        None => {
            *latched = Some(from);
            true
        }
        Some(at) if at == from => true,
        Some(_) => {
            stats.foreign += 1;
            stats.refused += 1;
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rtp(seq: u16, ssrc: u32) -> Vec<u8> {
        let mut p = vec![0x80, 0, 0, 0, 0, 0, 0, 160];
        p[2..4].copy_from_slice(&seq.to_be_bytes());
        p.extend_from_slice(&ssrc.to_be_bytes());
        p.extend_from_slice(&[0xff; 160]);
        p
    }

    async fn leg(latching: bool) -> Leg {
        let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        Leg::new(socket, latching, Some("127.0.0.1:4000".parse().unwrap()))
    }

    #[tokio::test]
    async fn a_leg_latches_to_its_first_source_and_refuses_every_other() {
        let mut leg = leg(true).await;
        let (phone, hijacker): (SocketAddr, SocketAddr) = (
            "127.0.0.1:5000".parse().unwrap(),
            "127.0.0.1:6000".parse().unwrap(),
        );
        assert_eq!(leg.endpoint(), Some("127.0.0.1:4000".parse().unwrap()));
        assert_eq!(leg.heard(phone, &rtp(1, 7)), Heard::Accepted);
        assert_eq!(leg.endpoint(), Some(phone), "sent to where it really is");
        assert_eq!(leg.heard(hijacker, &rtp(2, 9)), Heard::Foreign);
        assert_eq!(leg.heard(phone, &rtp(2, 7)), Heard::Accepted);
        let stats = leg.stats();
        assert_eq!((stats.packets, stats.foreign, stats.refused), (2, 1, 1));
        assert_eq!(stats.bytes, 2 * 172);
        // The same SDP again changes nothing; a new address opens the latch again.
        leg.advertise(Some("127.0.0.1:4000".parse().unwrap()));
        assert_eq!(leg.heard(hijacker, &rtp(3, 9)), Heard::Foreign);
        leg.advertise(Some("127.0.0.1:4100".parse().unwrap()));
        assert_eq!(leg.endpoint(), Some("127.0.0.1:4100".parse().unwrap()));
        assert_eq!(leg.heard(hijacker, &rtp(3, 9)), Heard::Accepted);
    }

    #[tokio::test]
    async fn a_leg_heard_before_its_first_sdp_stays_latched() {
        let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let mut leg = Leg::new(socket, true, None);
        let early: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        assert_eq!(leg.heard(early, &rtp(1, 7)), Heard::Accepted);
        leg.advertise(Some("127.0.0.1:4000".parse().unwrap()));
        assert_eq!(leg.endpoint(), Some(early));
        let other: SocketAddr = "127.0.0.1:6000".parse().unwrap();
        assert_eq!(leg.heard(other, &rtp(2, 9)), Heard::Foreign);
    }

    #[tokio::test]
    async fn a_leg_s_rtcp_socket_latches_on_its_own_and_takes_only_rtcp() {
        let rtcp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let advertised: SocketAddr = "127.0.0.1:4001".parse().unwrap();
        let mut leg = leg(true).await.with_rtcp(rtcp, Some(advertised), false);
        assert_eq!(leg.rtcp_route().map(|(_, to)| to), Some(advertised));
        let (phone, hijacker): (SocketAddr, SocketAddr) = (
            "127.0.0.1:5001".parse().unwrap(),
            "127.0.0.1:6001".parse().unwrap(),
        );
        let report = [0x80, 200, 0, 1, 0, 0, 0, 7];
        assert_eq!(leg.heard_rtcp(phone, &report), Heard::Accepted);
        assert_eq!(leg.rtcp_route().map(|(_, to)| to), Some(phone));
        assert_eq!(leg.heard_rtcp(hijacker, &report), Heard::Foreign);
        assert_eq!(leg.heard_rtcp(phone, &rtp(1, 7)), Heard::NotMedia);
        let stats = leg.stats();
        assert_eq!((stats.rtcp, stats.packets), (1, 0));
        assert_eq!((stats.foreign, stats.refused), (1, 2));
        // Muxed: RTCP goes to the RTP endpoint.
        leg.advertise_rtcp(Some(advertised), true);
        let endpoint = leg.endpoint();
        assert_eq!(leg.rtcp_route().map(|(_, to)| to), endpoint);
    }

    #[tokio::test]
    async fn a_leg_that_does_not_latch_hears_every_source() {
        let mut leg = leg(false).await;
        for port in [5000, 6000] {
            let from = SocketAddr::from(([127, 0, 0, 1], port));
            assert_eq!(leg.heard(from, &rtp(1, 7)), Heard::Accepted);
        }
    }

    #[tokio::test]
    async fn loss_rtcp_and_junk_are_counted_apart() {
        let mut leg = leg(true).await;
        let from: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        // 65534, 65535, 1, 2 (0 lost: one missing across the wrap), then a duplicate.
        for seq in [65534, 65535, 1, 2, 2] {
            leg.heard(from, &rtp(seq, 7));
        }
        assert_eq!(
            leg.heard(from, &[0x81, 201, 0, 1, 0, 0, 0, 7]),
            Heard::Accepted
        );
        assert_eq!(leg.heard(from, b"not RTP at all"), Heard::NotMedia);
        let stats = leg.stats();
        assert_eq!(stats.packets, 5);
        assert_eq!(stats.lost, 0, "the duplicate makes up for the missing one");
        assert_eq!(stats.rtcp, 1);
        assert_eq!(stats.refused, 1);
        assert_eq!(stats.foreign, 0);
        let mut other = self::leg(true).await;
        for seq in [10, 11, 14] {
            other.heard(from, &rtp(seq, 1));
        }
        assert_eq!(other.stats().lost, 2);
    }
}
