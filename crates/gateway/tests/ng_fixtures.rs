//! The ng datagrams of a real call (tools/sip/ng-fixtures: Kamailio 5.6.3's requests and
//! rtpengine 10.5's replies, byte for byte from the wire, captured by `scripts/sip-e2e.sh`):
//! tonegate's codec reads every one, its request reader understands Kamailio's requests with
//! nothing left unknown, and its SDP rewrite anchors the SDPs they carry.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use tonegate::ng::bencode::{decode, Value};
use tonegate::ng::request::{Parsed, Request, RequestError};
use tonegate::ng::split;
use tonegate::sdp::{anchor, Rewrite};

fn fixtures(set: &str) -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tools/sip/ng-fixtures")
        .join(set);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "bin"))
        .collect();
    files.sort();
    assert!(files.len() >= 10, "{}: the captured call", dir.display());
    files
        .into_iter()
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&p).unwrap())
        })
        .collect()
}

fn body(name: &str, datagram: &[u8]) -> Value {
    let (cookie, body) = split(datagram).unwrap_or_else(|| panic!("{name}: cookie, space, body"));
    assert!(!cookie.is_empty(), "{name}");
    decode(body).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn check(set: &str, flags: bool) {
    let local: SocketAddr = "127.0.0.1:30000".parse().unwrap();
    let mut commands = Vec::new();
    for (name, datagram) in fixtures(set) {
        let value = body(&name, &datagram);
        if name.contains("-reply-") {
            // rtpengine's answers: the codec reads them (nested dictionaries, lists, integers).
            assert!(value.get("result").is_some(), "{name}: {value:?}");
            continue;
        }
        let parsed: Result<_, RequestError> = Parsed::from_value(&value);
        let parsed = parsed.unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(
            parsed.unknown.is_empty(),
            "{name}: tonegate knows every key and flag Kamailio sent, not {:?}",
            parsed.unknown
        );
        match &parsed.request {
            Request::Offer(media) | Request::Answer(media) => {
                commands.push(if name.contains("offer") {
                    "offer"
                } else {
                    "answer"
                });
                assert!(
                    !media.call_id.is_empty() && !media.from_tag.is_empty(),
                    "{name}"
                );
                if flags {
                    assert!(media.options.replace_origin, "{name}: replace origin");
                    assert_eq!(
                        media.options.transport.as_deref(),
                        Some("RTP/AVP"),
                        "{name}"
                    );
                }
                let how = Rewrite {
                    origin: media.options.replace_origin,
                    rtcp_mux_offer: media.options.rtcp_mux_offer,
                    rtcp_mux_remove: media.options.rtcp_mux_remove,
                    strip: &media.options.strip,
                    protocol: media.options.transport.as_deref(),
                };
                let anchored =
                    anchor(&media.sdp, local, &how).unwrap_or_else(|e| panic!("{name}: {e}"));
                assert!(anchored.sdp.contains("c=IN IP4 127.0.0.1"), "{name}");
                assert!(
                    anchored.sdp.contains("m=audio 30000 "),
                    "{name}: {}",
                    anchored.sdp
                );
                assert!(
                    anchored.remote.is_some(),
                    "{name}: where the sender receives"
                );
                assert!(
                    !anchored.telephone_event.is_empty(),
                    "{name}: telephone-event kept"
                );
            }
            Request::Delete { .. } => commands.push("delete"),
            Request::Query { .. } => commands.push("query"),
            Request::List { .. } => commands.push("list"),
            other => panic!("{name}: {other:?}"),
        }
    }
    for command in ["offer", "answer", "delete", "query", "list"] {
        assert!(
            commands.contains(&command),
            "{set}: no {command} in {commands:?}"
        );
    }
}

#[test]
fn kamailio_s_requests_with_no_flags_are_understood_and_rtpengine_s_replies_read() {
    check("kamailio-default", false);
}

#[test]
fn kamailio_s_requests_with_the_usual_flags_are_understood() {
    check("kamailio-flags", true);
}
