//! The few SDP facts the decoder needs: which payload types carry telephone-events and RFC 2198
//! redundancy, and at what clock rate (`a=rtpmap:<pt> telephone-event/<rate>`,
//! `a=rtpmap:<pt> red/<rate>`).
//!
//! This is deliberately not an SDP parser: offer/answer handling lives in the gateway. It reads
//! `a=rtpmap` lines wherever they are (a whole SDP body, or SDP inside a SIP message found in a
//! capture) and ignores everything else.

use crate::time::ClockRate;

/// Payload types found in an SDP body.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SdpPayloadTypes {
    /// Telephone-event payload types with their clock rates, in the order found.
    pub telephone_event: Vec<(u8, ClockRate)>,
    /// RFC 2198 `red` payload types.
    pub red: Vec<u8>,
}

impl SdpPayloadTypes {
    /// Reads the `a=rtpmap` lines of `sdp`. Lines that do not parse are skipped: an SDP with
    /// no telephone-event mapping simply yields none.
    pub fn from_sdp(sdp: &str) -> SdpPayloadTypes {
        let mut found = SdpPayloadTypes::default();
        for line in sdp.lines() {
            let Some(map) = line.trim().strip_prefix("a=rtpmap:") else {
                continue;
            };
            let mut parts = map.split_whitespace();
            let (Some(pt), Some(encoding)) = (parts.next(), parts.next()) else {
                continue;
            };
            let Ok(pt) = pt.parse::<u8>() else { continue };
            if pt > 127 {
                continue;
            }
            let mut enc = encoding.split('/');
            let name = enc.next().unwrap_or_default();
            let rate = enc
                .next()
                .and_then(|r| r.parse().ok())
                .and_then(ClockRate::new)
                .unwrap_or_default();
            if name.eq_ignore_ascii_case("telephone-event") {
                if !found.telephone_event.iter().any(|&(p, _)| p == pt) {
                    found.telephone_event.push((pt, rate));
                }
            } else if name.eq_ignore_ascii_case("red") && !found.red.contains(&pt) {
                found.red.push(pt);
            }
        }
        found
    }

    /// Whether nothing was found.
    pub fn is_empty(&self) -> bool {
        self.telephone_event.is_empty() && self.red.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn telephone_event_and_red_payload_types_come_from_rtpmap_lines() {
        let sdp = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
                   m=audio 4000 RTP/AVP 0 8 96 100 97\r\na=rtpmap:0 PCMU/8000\r\n\
                   a=rtpmap:96 telephone-event/8000\r\na=fmtp:96 0-16\r\n\
                   a=rtpmap:100 RED/8000\r\na=fmtp:100 96/96\r\n\
                   a=rtpmap:97 telephone-event/48000\r\na=rtpmap:bad line\r\n";
        let found = SdpPayloadTypes::from_sdp(sdp);
        assert_eq!(
            found.telephone_event,
            vec![
                (96, ClockRate::NARROWBAND),
                (97, ClockRate::new(48000).unwrap())
            ]
        );
        assert_eq!(found.red, vec![100]);
        assert!(SdpPayloadTypes::from_sdp("m=audio 4000 RTP/AVP 0\r\n").is_empty());
    }
}
