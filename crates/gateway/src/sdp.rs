//! SDP offer/answer for media legs, the way media proxies are driven (rtpengine's offer and
//! answer are the model): the offer says what the caller's side sends; the answer puts the
//! gateway's RTP address in it and keeps one audio codec and telephone-event.
//!
//! Only what a DTMF gateway needs is read: the connection address, the first audio media line,
//! its payload types and their rtpmap (PCMU, PCMA, telephone-event, red).
//!
//! [`anchor`] is the ng protocol's rewrite: an SDP on its way to the other side of a call,
//! changed so that the other side sends its media to tonegate and tonegate can hear all of it.

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
    /// The audio stream is SRTP (`RTP/SAVP`, `RTP/SAVPF`, `UDP/TLS/RTP/SAVPF`).
    #[error(
        "the SDP's audio is {0}, SRTP, which tonegate does not do yet: offer RTP/AVP (plain RTP) \
         to tonegate"
    )]
    Srtp(String),
    /// The audio stream is not RTP at all.
    #[error("the SDP's audio is {0}: tonegate relays RTP/AVP (and RTP/AVPF)")]
    Transport(String),
}

/// How [`anchor`] rewrites an SDP, from the ng request's options.
#[derive(Clone, Debug, Default)]
pub struct Rewrite<'a> {
    /// `replace: [origin]`: the `o=` line gets tonegate's address too.
    pub origin: bool,
    /// Offer rtcp-mux (`a=rtcp-mux`) when the SDP does not.
    pub rtcp_mux_offer: bool,
    /// Take `a=rtcp-mux` out.
    pub rtcp_mux_remove: bool,
    /// Codecs to take out besides those tonegate cannot hear: encoding names (any case) or
    /// payload type numbers.
    pub strip: &'a [String],
    /// The transport to write in the `m=` line (`transport-protocol`: RTP/AVP or RTP/AVPF).
    pub protocol: Option<&'a str>,
}

/// An SDP rewritten by [`anchor`], and what it said.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Anchored {
    /// The SDP to pass on: tonegate's address and port in its audio stream.
    pub sdp: String,
    /// Where the SDP's sender receives its audio (media-level `c=`, else session-level, and
    /// the `m=` port); `None` for a port of 0 or an address of 0.0.0.0 (on hold, old style).
    pub remote: Option<SocketAddr>,
    /// G.711 formats kept, in the SDP's order: (payload type, `PCMU` or `PCMA`).
    pub audio: Vec<(u8, &'static str)>,
    /// Telephone-event payload types kept (8 kHz).
    pub telephone_event: Vec<u8>,
    /// RFC 2198 red payload types kept (8 kHz).
    pub red: Vec<u8>,
    /// Where the SDP's sender receives its RTCP when it does not mux: its `a=rtcp:` (RFC 3605,
    /// the address defaulting to the stream's), else the RTP port + 1 (RFC 3550 §11); `None`
    /// when [`Anchored::remote`] is.
    pub rtcp: Option<SocketAddr>,
    /// Whether the SDP as it came carries `a=rtcp-mux`.
    pub rtcp_mux: bool,
    /// Whether the SDP passed on carries `a=rtcp-mux` (after [`Rewrite::rtcp_mux_offer`] and
    /// [`Rewrite::rtcp_mux_remove`]).
    pub rtcp_mux_passed: bool,
}

/// ICE attributes: tonegate is no ICE agent, and a candidate left in the SDP is a path that
/// bypasses it.
const ICE_ATTRIBUTES: &[&str] = &[
    "a=candidate:",
    "a=ice-ufrag:",
    "a=ice-pwd:",
    "a=ice-options:",
    "a=ice-lite",
    "a=ice-mismatch",
    "a=end-of-candidates",
    "a=remote-candidates:",
];

/// Rewrites `sdp` so that the side it goes to sends its audio to `local` (tonegate's socket for
/// that side), the way rtpengine rewrites an offer or an answer:
///
/// - every `c=` line carries `local`'s address (session and media level), and the `o=` line
///   too with [`Rewrite::origin`];
/// - the first audio stream with a port carries `local`'s port; its formats keep only what
///   tonegate hears: PCMU (0), PCMA (8), telephone-event and red at 8 kHz, comfort noise (13),
///   less [`Rewrite::strip`] — so the call settles on G.711 and no key can hide in a codec
///   tonegate cannot decode; `rtpmap`, `fmtp` and `rtcp-fb` lines of formats taken out go too;
/// - ICE attributes, `a=rtcp:` (tonegate's RTCP socket is always `local`'s port + 1, which the
///   RFC 3550 default already says), and SDES/DTLS keys go; other media streams (video, a second audio) are
///   rejected with port 0, since tonegate relays one audio stream per call;
/// - everything else (direction attributes, `ptime`, ...) is kept as it was.
///
/// SRTP streams are refused ([`SdpError::Srtp`]), as is a stream left without PCMU or PCMA.
pub fn anchor(sdp: &str, local: SocketAddr, how: &Rewrite<'_>) -> Result<Anchored, SdpError> {
    let ours = match local.ip() {
        IpAddr::V4(ip) => format!("IN IP4 {ip}"),
        IpAddr::V6(ip) => format!("IN IP6 {ip}"),
    };
    let lines: Vec<&str> = sdp.lines().map(|l| l.trim_end_matches('\r')).collect();
    // Sections: the session's lines, then one per m= line.
    let starts: Vec<usize> = lines
        .iter()
        .enumerate()
        .filter(|(_, l)| l.starts_with("m="))
        .map(|(i, _)| i)
        .collect();
    let section_of = |i: usize| starts.iter().rposition(|&s| s <= i);
    let anchored = starts.iter().position(|&s| {
        let mut m = lines[s].split_whitespace();
        m.next() == Some("m=audio") && m.next().is_some_and(|p| p != "0")
    });
    let Some(anchored) = anchored else {
        return Err(SdpError::NoAudio);
    };
    let section_lines = |n: usize| {
        let from = starts[n] + 1;
        let to = starts.get(n + 1).copied().unwrap_or(lines.len());
        &lines[from..to]
    };
    // The anchored stream's m= line and formats.
    let mut m = lines[starts[anchored]].split_whitespace().skip(1);
    let port: u16 = m.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    let proto = m.next().unwrap_or_default().to_owned();
    let formats: Vec<&str> = m.collect();
    let upper = proto.to_ascii_uppercase();
    if upper.contains("SAVP") || upper.contains("TLS") {
        return Err(SdpError::Srtp(proto));
    }
    if upper != "RTP/AVP" && upper != "RTP/AVPF" {
        return Err(SdpError::Transport(proto));
    }
    let rtpmap = |pt: &str| -> Option<(String, u32)> {
        section_lines(anchored).iter().find_map(|l| {
            let map = l.strip_prefix("a=rtpmap:")?;
            let (p, encoding) = map.split_once(' ')?;
            (p == pt).then(|| {
                let mut e = encoding.trim().split('/');
                let name = e.next().unwrap_or_default().to_ascii_uppercase();
                let rate = e.next().and_then(|r| r.parse().ok()).unwrap_or(0);
                (name, rate)
            })
        })
    };
    let stripped_by_request = |pt: &str, name: &str| {
        how.strip
            .iter()
            .any(|s| s == pt || s.eq_ignore_ascii_case(name))
    };
    let (mut audio, mut telephone_event, mut red) = (Vec::new(), Vec::new(), Vec::new());
    let mut kept = Vec::new();
    for &pt in &formats {
        let Ok(number) = pt.parse::<u8>() else {
            continue;
        };
        let (name, rate) = rtpmap(pt).unwrap_or_else(|| match number {
            0 => ("PCMU".into(), 8000),
            8 => ("PCMA".into(), 8000),
            13 => ("CN".into(), 8000),
            _ => (String::new(), 0),
        });
        if stripped_by_request(pt, &name) {
            continue;
        }
        let keep = match (number, name.as_str(), rate) {
            (0, "PCMU", 8000) => {
                audio.push((0, "PCMU"));
                true
            }
            (8, "PCMA", 8000) => {
                audio.push((8, "PCMA"));
                true
            }
            (13, "CN", 8000) => true,
            (_, "TELEPHONE-EVENT", 8000) => {
                telephone_event.push(number);
                true
            }
            (_, "RED", 8000) => {
                red.push(number);
                true
            }
            _ => false,
        };
        if keep {
            kept.push(pt);
        }
    }
    if audio.is_empty() {
        return Err(SdpError::NoCodec);
    }
    // Where the SDP's sender receives: the media-level c= wins over the session's.
    let connection = |l: &&str| {
        l.strip_prefix("c=IN IP4 ")
            .or_else(|| l.strip_prefix("c=IN IP6 "))
            .and_then(|a| a.split('/').next())
            .and_then(|a| a.trim().parse::<IpAddr>().ok())
    };
    let address = section_lines(anchored)
        .iter()
        .find_map(connection)
        .or_else(|| lines[..starts[0]].iter().find_map(connection));
    let remote = address
        .filter(|ip| !ip.is_unspecified() && port != 0)
        .map(|ip| SocketAddr::new(ip, port));
    let rtcp = remote.map(|remote| {
        section_lines(anchored)
            .iter()
            .find_map(|l| rtcp_attribute(l, remote.ip()))
            .unwrap_or_else(|| SocketAddr::new(remote.ip(), remote.port().saturating_add(1)))
    });
    let rtcp_mux = section_lines(anchored).contains(&"a=rtcp-mux");

    let dropped_format = |line: &str| {
        ["a=rtpmap:", "a=fmtp:", "a=rtcp-fb:"].iter().any(|prefix| {
            line.strip_prefix(prefix)
                .and_then(|rest| rest.split([' ', ':']).next())
                .is_some_and(|pt| pt != "*" && !kept.contains(&pt))
        })
    };
    let mut out: Vec<String> = Vec::with_capacity(lines.len() + 1);
    // Where the anchored stream's lines end in `out`, for an rtcp-mux offered.
    let mut anchored_end = 0;
    let mut has_rtcp_mux = false;
    for (i, line) in lines.iter().enumerate() {
        let section = section_of(i);
        let is_anchored = section == Some(anchored);
        if line.is_empty() {
            continue;
        }
        if ICE_ATTRIBUTES.iter().any(|a| line.starts_with(a))
            || line.starts_with("a=crypto:")
            || line.starts_with("a=fingerprint:")
            || line.starts_with("a=setup:")
        {
            continue;
        }
        let rewritten: Option<String> = if line.starts_with("c=") {
            Some(format!("c={ours}"))
        } else if line.starts_with("o=") && how.origin {
            let fields: Vec<&str> = line.split_whitespace().collect();
            (fields.len() >= 6).then(|| format!("{} {} {} {ours}", fields[0], fields[1], fields[2]))
        } else if line.starts_with("m=") && is_anchored {
            let proto = how.protocol.unwrap_or(&proto);
            Some(format!(
                "m=audio {} {proto} {}",
                local.port(),
                kept.join(" ")
            ))
        } else if line.starts_with("m=") {
            // Another stream: rejected (port 0), the rest of its line kept.
            let mut fields: Vec<&str> = line.split_whitespace().collect();
            if fields.len() > 1 {
                fields[1] = "0";
            }
            Some(fields.join(" "))
        } else if is_anchored {
            if line.starts_with("a=rtcp:") || dropped_format(line) {
                continue;
            }
            if *line == "a=rtcp-mux" {
                if how.rtcp_mux_remove {
                    continue;
                }
                has_rtcp_mux = true;
            }
            None
        } else {
            None
        };
        out.push(rewritten.unwrap_or_else(|| (*line).to_owned()));
        if is_anchored {
            anchored_end = out.len();
        }
    }
    if how.rtcp_mux_offer && !how.rtcp_mux_remove && !has_rtcp_mux {
        out.insert(anchored_end, "a=rtcp-mux".to_owned());
        has_rtcp_mux = true;
    }
    let mut text = out.join("\r\n");
    text.push_str("\r\n");
    Ok(Anchored {
        sdp: text,
        remote,
        audio,
        telephone_event,
        red,
        rtcp,
        rtcp_mux,
        rtcp_mux_passed: has_rtcp_mux,
    })
}

/// An `a=rtcp:PORT [IN IP4 addr]` line (RFC 3605): where RTCP goes, the address defaulting to
/// `stream` (the stream's connection address).
fn rtcp_attribute(line: &str, stream: IpAddr) -> Option<SocketAddr> {
    let mut fields = line.strip_prefix("a=rtcp:")?.split_whitespace();
    let port: u16 = fields.next()?.parse().ok().filter(|&p| p != 0)?;
    let ip = match (fields.next(), fields.next(), fields.next()) {
        (Some("IN"), Some("IP4" | "IP6"), Some(address)) => address.parse().ok()?,
        _ => stream,
    };
    Some(SocketAddr::new(ip, port))
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

    /// An offer as a softphone sends it through Kamailio: ICE, a separate RTCP port, Opus
    /// first, a video stream.
    const PHONE_OFFER: &str = "v=0\r\no=alice 2890844526 2890844526 IN IP4 198.51.100.7\r\n\
        s=-\r\nc=IN IP4 198.51.100.7\r\nt=0 0\r\na=ice-ufrag:F7gI\r\n\
        m=audio 49170 RTP/AVP 111 0 8 101 13\r\nc=IN IP4 198.51.100.8\r\n\
        a=rtpmap:111 opus/48000/2\r\na=fmtp:111 minptime=10\r\na=rtcp-fb:111 transport-cc\r\n\
        a=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\n\
        a=fmtp:101 0-16\r\na=rtcp:49171\r\na=ice-pwd:x9cml\r\n\
        a=candidate:1 1 UDP 2130706431 198.51.100.8 49170 typ host\r\na=sendrecv\r\na=ptime:20\r\n\
        m=video 51372 RTP/AVP 96\r\na=rtpmap:96 VP8/90000\r\n";

    #[test]
    fn where_the_sender_receives_rtcp_is_its_rtcp_attribute_else_the_port_above() {
        let local: SocketAddr = "203.0.113.1:30000".parse().unwrap();
        let a = anchor(PHONE_OFFER, local, &Rewrite::default()).unwrap();
        assert_eq!(a.rtcp, Some("198.51.100.8:49171".parse().unwrap()));
        assert!(!a.rtcp_mux && !a.rtcp_mux_passed);
        let elsewhere = PHONE_OFFER.replace("a=rtcp:49171", "a=rtcp:53020 IN IP4 192.0.2.9");
        let a = anchor(&elsewhere, local, &Rewrite::default()).unwrap();
        assert_eq!(a.rtcp, Some("192.0.2.9:53020".parse().unwrap()));
        let default = PHONE_OFFER.replace("a=rtcp:49171\r\n", "a=rtcp-mux\r\n");
        let a = anchor(&default, local, &Rewrite::default()).unwrap();
        assert_eq!(a.rtcp, Some("198.51.100.8:49171".parse().unwrap()));
        assert!(a.rtcp_mux && a.rtcp_mux_passed);
        let offered = Rewrite {
            rtcp_mux_offer: true,
            ..Rewrite::default()
        };
        let a = anchor(PHONE_OFFER, local, &offered).unwrap();
        assert!(!a.rtcp_mux && a.rtcp_mux_passed);
    }

    #[test]
    fn an_anchored_sdp_points_the_other_side_at_tonegate_with_what_tonegate_hears() {
        let local: SocketAddr = "203.0.113.1:30000".parse().unwrap();
        let a = anchor(PHONE_OFFER, local, &Rewrite::default()).unwrap();
        // Media-level c= wins over the session's.
        assert_eq!(a.remote, Some("198.51.100.8:49170".parse().unwrap()));
        assert_eq!(a.audio, [(0, "PCMU"), (8, "PCMA")]);
        assert_eq!(a.telephone_event, [101]);
        let sdp = &a.sdp;
        assert!(
            sdp.contains("m=audio 30000 RTP/AVP 0 8 101 13\r\n"),
            "{sdp}"
        );
        assert_eq!(sdp.matches("c=IN IP4 203.0.113.1\r\n").count(), 2, "{sdp}");
        assert!(!sdp.contains("198.51.100.8"), "{sdp}");
        // Without replace-origin, o= is the sender's.
        assert!(sdp.contains("o=alice 2890844526 2890844526 IN IP4 198.51.100.7\r\n"));
        for gone in [
            "opus",
            "a=fmtp:111",
            "a=rtcp-fb:111",
            "a=rtcp:",
            "ice-",
            "candidate",
        ] {
            assert!(!sdp.contains(gone), "`{gone}` is still in\n{sdp}");
        }
        for kept in [
            "a=fmtp:101 0-16",
            "a=sendrecv",
            "a=ptime:20",
            "a=rtpmap:96 VP8/90000",
        ] {
            assert!(sdp.contains(kept), "`{kept}` went from\n{sdp}");
        }
        assert!(
            sdp.contains("m=video 0 RTP/AVP 96\r\n"),
            "video rejected: {sdp}"
        );
        assert!(sdp.ends_with("\r\n") && !sdp.contains("\r\n\r\n"));
        // What tonegate writes, it can read back.
        let again = Offer::parse(sdp).unwrap();
        assert_eq!(again.codec, (0, "PCMU"));
        assert_eq!(again.telephone_event, [101]);
    }

    #[test]
    fn the_options_of_the_request_change_the_rewrite() {
        let local: SocketAddr = "[2001:db8::1]:30002".parse().unwrap();
        let strip = vec!["pcmu".to_owned(), "13".to_owned()];
        let how = Rewrite {
            origin: true,
            rtcp_mux_offer: true,
            strip: &strip,
            protocol: Some("RTP/AVPF"),
            ..Rewrite::default()
        };
        let a = anchor(PHONE_OFFER, local, &how).unwrap();
        let sdp = &a.sdp;
        assert!(
            sdp.contains("o=alice 2890844526 2890844526 IN IP6 2001:db8::1\r\n"),
            "{sdp}"
        );
        assert!(sdp.contains("m=audio 30002 RTP/AVPF 8 101\r\n"), "{sdp}");
        assert!(!sdp.contains("PCMU"));
        assert_eq!(a.audio, [(8, "PCMA")]);
        // rtcp-mux is offered within the audio stream, before the video stream.
        let mux = sdp.find("a=rtcp-mux\r\n").expect("rtcp-mux offered");
        assert!(mux < sdp.find("m=video").unwrap(), "{sdp}");
        let with_mux = PHONE_OFFER.replace("a=ptime:20", "a=rtcp-mux");
        let removed = anchor(
            &with_mux,
            local,
            &Rewrite {
                rtcp_mux_remove: true,
                ..Rewrite::default()
            },
        )
        .unwrap();
        assert!(!removed.sdp.contains("rtcp-mux"));
        let kept = anchor(&with_mux, local, &Rewrite::default()).unwrap();
        assert_eq!(kept.sdp.matches("a=rtcp-mux").count(), 1);
    }

    #[test]
    fn what_tonegate_cannot_relay_or_hear_is_refused_with_the_reason() {
        let local: SocketAddr = "127.0.0.1:30000".parse().unwrap();
        let none = Rewrite::default();
        let srtp = PHONE_OFFER.replace("RTP/AVP 111", "RTP/SAVP 111");
        let e = anchor(&srtp, local, &none).unwrap_err();
        assert_eq!(e, SdpError::Srtp("RTP/SAVP".into()));
        assert!(e.to_string().contains("RTP/AVP"), "{e}");
        let dtls = PHONE_OFFER.replace("RTP/AVP 111", "UDP/TLS/RTP/SAVPF 111");
        assert!(matches!(
            anchor(&dtls, local, &none),
            Err(SdpError::Srtp(_))
        ));
        let opus_only = "v=0\r\nc=IN IP4 10.0.0.1\r\nm=audio 4000 RTP/AVP 111\r\n\
            a=rtpmap:111 opus/48000/2\r\n";
        assert_eq!(anchor(opus_only, local, &none), Err(SdpError::NoCodec));
        let strip = vec!["PCMU".to_owned(), "PCMA".to_owned()];
        let stripped = Rewrite {
            strip: &strip,
            ..Rewrite::default()
        };
        assert_eq!(
            anchor(PHONE_OFFER, local, &stripped),
            Err(SdpError::NoCodec)
        );
        assert_eq!(
            anchor("v=0\r\nm=video 4000 RTP/AVP 96\r\n", local, &none),
            Err(SdpError::NoAudio)
        );
        // On hold, old style: no address to send to, the SDP still rewritten.
        let held = "v=0\r\nc=IN IP4 0.0.0.0\r\nm=audio 4000 RTP/AVP 0\r\n";
        let a = anchor(held, local, &none).unwrap();
        assert_eq!(a.remote, None);
        assert!(a.sdp.contains("c=IN IP4 127.0.0.1"));
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
