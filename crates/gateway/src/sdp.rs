//! SDP offer/answer for media legs, the way media proxies are driven (rtpengine's offer and
//! answer are the model): the offer says what the caller's side sends; the answer puts the
//! gateway's RTP address in it and keeps one audio codec and telephone-event.
//!
//! Only what a DTMF gateway needs is read: the connection address, the first audio media line,
//! its payload types and their rtpmap (PCMU, PCMA, telephone-event, red).

use std::net::{IpAddr, SocketAddr};

use tonegate_media::sdp::SdpPayloadTypes;

/// What an offer asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Offer {
    /// Where the offerer receives media (`c=` and `m=audio` port), if it says.
    pub remote: Option<SocketAddr>,
    /// The audio codec chosen: (payload type, encoding name) of the first PCMU or PCMA offered.
    pub codec: (u8, &'static str),
    /// Telephone-event payload types offered.
    pub telephone_event: Vec<u8>,
    /// RFC 2198 red payload types offered.
    pub red: Vec<u8>,
}

/// Why an offer cannot be answered.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SdpError {
    /// No `m=audio` line.
    #[error("the SDP offer has no m=audio line")]
    NoAudio,
    /// Neither PCMU nor PCMA is offered.
    #[error("the SDP offer has neither PCMU (0) nor PCMA (8); tonegate speaks G.711 only")]
    NoCodec,
}

impl Offer {
    /// Reads an SDP offer.
    pub fn parse(sdp: &str) -> Result<Offer, SdpError> {
        let mut address: Option<IpAddr> = None;
        let mut audio: Option<(u16, Vec<u8>)> = None;
        for line in sdp.lines().map(str::trim) {
            if let Some(c) = line
                .strip_prefix("c=IN IP4 ")
                .or_else(|| line.strip_prefix("c=IN IP6 "))
            {
                if audio.is_none() || address.is_none() {
                    address = c.split('/').next().and_then(|a| a.parse().ok());
                }
            } else if let Some(m) = line.strip_prefix("m=audio ") {
                if audio.is_none() {
                    let mut parts = m.split_whitespace();
                    let port = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
                    let _proto = parts.next();
                    let pts = parts.filter_map(|p| p.parse().ok()).collect();
                    audio = Some((port, pts));
                }
            }
        }
        let (port, pts) = audio.ok_or(SdpError::NoAudio)?;
        let codec = pts
            .iter()
            .find_map(|&pt| match pt {
                0 => Some((0, "PCMU")),
                8 => Some((8, "PCMA")),
                _ => None,
            })
            .ok_or(SdpError::NoCodec)?;
        let found = SdpPayloadTypes::from_sdp(sdp);
        let offered = |pt: &u8| pts.contains(pt);
        Ok(Offer {
            remote: address
                .filter(|_| port != 0)
                .map(|ip| SocketAddr::new(ip, port)),
            codec,
            telephone_event: found
                .telephone_event
                .iter()
                .map(|&(pt, _)| pt)
                .filter(offered)
                .collect(),
            red: found.red.into_iter().filter(offered).collect(),
        })
    }

    /// The answer: the gateway receives at `local`; `recvonly` for a fork (nothing is sent
    /// back), `sendrecv` for a relay.
    pub fn answer(&self, local: SocketAddr, session_id: u64, send: bool) -> String {
        let ip = match local.ip() {
            IpAddr::V4(ip) => format!("IP4 {ip}"),
            IpAddr::V6(ip) => format!("IP6 {ip}"),
        };
        let mut pts = vec![self.codec.0];
        pts.extend(self.telephone_event.first().copied());
        let formats: Vec<String> = pts.iter().map(u8::to_string).collect();
        let mut sdp = format!(
            "v=0\r\no=tonegate {session_id} 1 IN {ip}\r\ns=tonegate\r\nc=IN {ip}\r\nt=0 0\r\n\
             m=audio {} RTP/AVP {}\r\na=rtpmap:{} {}/8000\r\n",
            local.port(),
            formats.join(" "),
            self.codec.0,
            self.codec.1
        );
        if let Some(te) = self.telephone_event.first() {
            sdp.push_str(&format!(
                "a=rtpmap:{te} telephone-event/8000\r\na=fmtp:{te} 0-16\r\n"
            ));
        }
        sdp.push_str("a=ptime:20\r\n");
        sdp.push_str(if send {
            "a=sendrecv\r\n"
        } else {
            "a=recvonly\r\n"
        });
        sdp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OFFER: &str = "v=0\r\no=- 1 1 IN IP4 10.0.0.5\r\ns=-\r\nc=IN IP4 10.0.0.5\r\nt=0 0\r\n\
        m=audio 40000 RTP/AVP 8 0 96 100\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:0 PCMU/8000\r\n\
        a=rtpmap:96 telephone-event/8000\r\na=fmtp:96 0-15\r\na=rtpmap:100 red/8000\r\n";

    #[test]
    fn an_offer_is_read_and_answered_with_the_gateway_s_port() {
        let offer = Offer::parse(OFFER).unwrap();
        assert_eq!(offer.remote, Some("10.0.0.5:40000".parse().unwrap()));
        assert_eq!(offer.codec, (8, "PCMA"));
        assert_eq!(offer.telephone_event, [96]);
        assert_eq!(offer.red, [100]);
        let answer = offer.answer("127.0.0.1:31000".parse().unwrap(), 7, false);
        assert!(
            answer.contains("m=audio 31000 RTP/AVP 8 96\r\n"),
            "{answer}"
        );
        assert!(answer.contains("c=IN IP4 127.0.0.1\r\n"));
        assert!(answer.contains("a=rtpmap:96 telephone-event/8000"));
        assert!(answer.contains("a=recvonly"));
        let again = Offer::parse(&answer).unwrap();
        assert_eq!(again.telephone_event, [96]);
    }

    #[test]
    fn offers_without_audio_or_g711_are_refused() {
        assert_eq!(
            Offer::parse("v=0\r\nm=video 4000 RTP/AVP 96\r\n"),
            Err(SdpError::NoAudio)
        );
        assert_eq!(
            Offer::parse("v=0\r\nm=audio 4000 RTP/AVP 9\r\na=rtpmap:9 G722/8000\r\n"),
            Err(SdpError::NoCodec)
        );
    }
}
