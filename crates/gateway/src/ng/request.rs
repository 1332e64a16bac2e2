//! An ng request read from its dictionary: the command, the keys it needs, and the options
//! tonegate acts on. Keys and flags tonegate does not know are collected, not refused (a SIP
//! proxy's configuration may send flags meant for rtpengine features tonegate lacks).
//!
//! Key names are matched as rtpengine matches them: `transport protocol` and
//! `transport-protocol` are one key, and so are `received from` and `received-from`.
//! Flags (the `flags` list, and the tokens of `rtpp-flags`, a flags string the proxy leaves to
//! the media proxy to parse) are read the way Kamailio's module reads its flags string:
//! `replace-origin`, `ICE=remove`, `rtcp-mux-demux`, `RTP/AVP`, `codec-strip-PCMA`, `trust-address`.

use std::net::IpAddr;

use super::bencode::Value;

/// A command and what it needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    /// `ping`: answered `pong`.
    Ping,
    /// `offer`: the SDP of the leg with `from_tag`, to be rewritten for the other side.
    Offer(Media),
    /// `answer`: the SDP of the leg with `to_tag`, answering `from_tag`'s offer.
    Answer(Media),
    /// `delete`: the call ends.
    Delete {
        /// The SIP Call-ID.
        call_id: String,
        /// The `fatal` flag: an unknown call is an error, not a warning.
        fatal: bool,
    },
    /// `query`: the call's counters.
    Query {
        /// The SIP Call-ID.
        call_id: String,
    },
    /// `list`: the Call-IDs of the calls up.
    List {
        /// At most this many (`limit`, default 32).
        limit: usize,
    },
    /// `statistics`: the gateway's totals.
    Statistics,
    /// `block DTMF` (`block` true) or `unblock DTMF`.
    BlockDtmf {
        /// The SIP Call-ID.
        call_id: String,
        /// The participant, when one is named (`from-tag`).
        from_tag: Option<String>,
        /// Block or unblock.
        block: bool,
    },
}

/// An `offer` or an `answer`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Media {
    /// The SIP Call-ID.
    pub call_id: String,
    /// The SIP From tag.
    pub from_tag: String,
    /// The SIP To tag (answers only).
    pub to_tag: Option<String>,
    /// The SDP body.
    pub sdp: String,
    /// What to do with it.
    pub options: Options,
}

/// The options of an offer or answer tonegate acts on.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Options {
    /// `replace: [origin]`: the `o=` line gets tonegate's address too.
    pub replace_origin: bool,
    /// `rtcp-mux: [offer]` or `[require]`: offer rtcp-mux even if the SDP does not.
    pub rtcp_mux_offer: bool,
    /// `rtcp-mux: [demux]` or `[reject]`: take rtcp-mux out of the SDP.
    pub rtcp_mux_remove: bool,
    /// `SIP-source-address`: the media address is the SIP message's source (`received-from`),
    /// not the SDP's.
    pub sip_source: bool,
    /// `received-from: [IP4, address]`.
    pub received_from: Option<IpAddr>,
    /// `media address`: overrides the SDP's address.
    pub media_address: Option<IpAddr>,
    /// Codecs to take out of the SDP (`codec: {strip: [...], mask: [...]}`, `codec-strip-X`):
    /// encoding names (`PCMA`, `telephone-event`) or payload type numbers.
    pub strip: Vec<String>,
    /// `transport-protocol`: `RTP/AVP` or `RTP/AVPF` (SRTP is refused when reading).
    pub transport: Option<String>,
    /// `caller`: which side keys the payment (`offerer` or `answerer`; `caller=answerer` as a
    /// Kamailio flag), for a call whose caller is the callee in SIP terms (an outbound call
    /// from an agent or a dialler); default: the gateway's `ng_caller`.
    pub caller: Option<CallerSide>,
}

/// The side of an ng call whose keys are collected and masked.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CallerSide {
    /// The side that sent the first offer (the From tag): an inbound call.
    #[default]
    Offerer,
    /// The side that answered it (the To tag): an outbound call.
    Answerer,
}

impl Options {
    /// The address the leg's media comes from and goes to, when the request says it is not the
    /// SDP's (`media address`, or `SIP-source-address` with `received-from`).
    pub fn media_address_override(&self) -> Option<IpAddr> {
        self.media_address
            .or(self.received_from.filter(|_| self.sip_source))
    }
}

/// Why a request cannot be carried out as sent. The text is the `error-reason`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// The document is bencode but not a dictionary.
    #[error("the request is not a bencoded dictionary")]
    NotADictionary,
    /// No `command` key.
    #[error("the request has no `command`")]
    NoCommand,
    /// A command tonegate does not carry out.
    #[error(
        "unknown command `{0}`: tonegate answers ping, offer, answer, delete, query, list, \
         statistics, block DTMF and unblock DTMF"
    )]
    UnknownCommand(String),
    /// A key the command needs is missing or not text.
    #[error("`{command}` needs `{key}` (a string)")]
    Missing {
        /// The command.
        command: &'static str,
        /// The key.
        key: &'static str,
    },
    /// SRTP was asked for, or offered in the SDP.
    #[error(
        "{0} asks for SRTP, which tonegate does not do yet: use RTP/AVP (plain RTP) between \
         the proxy's endpoints and tonegate"
    )]
    Srtp(String),
    /// A transport tonegate does not know.
    #[error("transport-protocol `{0}`: tonegate relays RTP/AVP (and RTP/AVPF)")]
    UnknownTransport(String),
    /// `caller` is neither side.
    #[error("caller `{0}`: use `offerer` (the From tag's side) or `answerer` (the To tag's)")]
    UnknownCaller(String),
}

/// A request, with what was not understood in it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Parsed {
    /// The request.
    pub request: Request,
    /// Keys and flags tonegate does not know, ignored (for the metric and the log).
    pub unknown: Vec<String>,
    /// Things asked for that tonegate does differently, said back as the answer's `warning`.
    pub warnings: Vec<String>,
}

/// Dictionary keys tonegate reads or knowingly ignores, normalised ([`normalise`]).
const KNOWN_KEYS: &[&str] = &[
    "command",
    "call-id",
    "from-tag",
    "to-tag",
    "via-branch",
    "sdp",
    "flags",
    "rtpp-flags",
    "replace",
    "ice",
    "rtcp-mux",
    "direction",
    "received-from",
    "transport-protocol",
    "supports",
    "sip-message-type",
    "label",
    "to-label",
    "set-label",
    "address-family",
    "media-address",
    "codec",
    "delete-delay",
    "limit",
    "all",
    "interface",
    "dtmf-security",
];

/// Flags (and flag-like tokens) tonegate knowingly accepts without doing anything more: what
/// they ask is what tonegate does anyway.
const KNOWN_FLAGS: &[&str] = &[
    // Trust the SDP's address: tonegate's default.
    "trust-address",
    // Symmetric RTP, strict source and port latching: tonegate always latches each leg to the
    // first source it hears and refuses any other.
    "symmetric",
    "strict-source",
    "port-latching",
    // Delete: all branches (tonegate deletes the whole call anyway).
    "all",
    // Kamailio's load-limit extension, named in `supports`.
    "load-limit",
    // tonegate writes no `a=rtcp` line.
    "no-rtcp-attribute",
];

/// A key or flag as rtpengine compares it: spaces and underscores are hyphens, case is ignored.
pub fn normalise(name: &str) -> String {
    name.trim()
        .chars()
        .map(|c| match c {
            ' ' | '_' => '-',
            c => c.to_ascii_lowercase(),
        })
        .collect()
}

impl Parsed {
    /// Reads a decoded request.
    pub fn from_value(value: &Value) -> Result<Parsed, RequestError> {
        let entries = value.entries().ok_or(RequestError::NotADictionary)?;
        let mut reader = Reader::default();
        for (key, v) in entries {
            let key = String::from_utf8_lossy(key);
            reader.key(&normalise(&key), &key, v)?;
        }
        let command = reader.command.clone().ok_or(RequestError::NoCommand)?;
        let text = |name: &'static str, value: &Option<String>, command: &'static str| {
            value
                .clone()
                .ok_or(RequestError::Missing { command, key: name })
        };
        let request = match command.as_str() {
            "ping" => Request::Ping,
            "offer" | "answer" => {
                let answer = command == "answer";
                let name = if answer { "answer" } else { "offer" };
                let media = Media {
                    call_id: text("call-id", &reader.call_id, name)?,
                    from_tag: text("from-tag", &reader.from_tag, name)?,
                    to_tag: if answer {
                        Some(text("to-tag", &reader.to_tag, name)?)
                    } else {
                        reader.to_tag.clone()
                    },
                    sdp: text("sdp", &reader.sdp, name)?,
                    options: Options {
                        transport: reader.transport.clone(),
                        ..reader.options.clone()
                    },
                };
                if let Some(transport) = &reader.transport {
                    check_transport(transport)?;
                }
                if answer {
                    Request::Answer(media)
                } else {
                    Request::Offer(media)
                }
            }
            "delete" => Request::Delete {
                call_id: text("call-id", &reader.call_id, "delete")?,
                fatal: reader.fatal,
            },
            "query" => Request::Query {
                call_id: text("call-id", &reader.call_id, "query")?,
            },
            "list" => Request::List {
                limit: reader.limit.unwrap_or(32),
            },
            "statistics" => Request::Statistics,
            "block dtmf" | "unblock dtmf" => {
                let block = command == "block dtmf";
                Request::BlockDtmf {
                    call_id: text(
                        "call-id",
                        &reader.call_id,
                        if block { "block DTMF" } else { "unblock DTMF" },
                    )?,
                    from_tag: reader.from_tag.clone(),
                    block,
                }
            }
            _ => return Err(RequestError::UnknownCommand(reader.command_as_sent)),
        };
        Ok(Parsed {
            request,
            unknown: reader.unknown,
            warnings: reader.warnings,
        })
    }
}

/// Plain RTP is what tonegate relays; SRTP gets its own, clear refusal.
fn check_transport(transport: &str) -> Result<(), RequestError> {
    let upper = transport.to_ascii_uppercase();
    if upper.contains("SAVP") || upper.contains("TLS") {
        Err(RequestError::Srtp(format!(
            "transport-protocol {transport}"
        )))
    } else if upper == "RTP/AVP" || upper == "RTP/AVPF" {
        Ok(())
    } else {
        Err(RequestError::UnknownTransport(transport.to_owned()))
    }
}

#[derive(Default)]
struct Reader {
    command: Option<String>,
    command_as_sent: String,
    call_id: Option<String>,
    from_tag: Option<String>,
    to_tag: Option<String>,
    sdp: Option<String>,
    transport: Option<String>,
    fatal: bool,
    limit: Option<usize>,
    options: Options,
    unknown: Vec<String>,
    warnings: Vec<String>,
}

impl Reader {
    fn key(&mut self, key: &str, as_sent: &str, value: &Value) -> Result<(), RequestError> {
        let text = || value.as_str().map(str::to_owned);
        match key {
            "command" => {
                self.command_as_sent = value
                    .as_str()
                    .map(str::to_owned)
                    .unwrap_or_else(|| format!("{value:?}"));
                // Commands have spaces (`block DTMF`); rtpengine also takes hyphens.
                self.command = text().map(|c| normalise(&c).replace('-', " "));
            }
            "call-id" => self.call_id = text(),
            "from-tag" => self.from_tag = text(),
            "to-tag" => self.to_tag = text(),
            "sdp" => self.sdp = text(),
            "flags" => {
                for flag in value.as_list().unwrap_or_default() {
                    if let Some(flag) = flag.as_str() {
                        self.token(flag)?;
                    }
                }
            }
            "rtpp-flags" => {
                for token in value.as_str().unwrap_or_default().split_whitespace() {
                    self.token(token)?;
                }
            }
            "replace" => {
                for item in value.as_list().unwrap_or_default() {
                    if let Some(item) = item.as_str() {
                        self.replace(item);
                    }
                }
            }
            "ice" => self.ice(value.as_str().unwrap_or_default()),
            "rtcp-mux" => {
                for item in value.as_list().unwrap_or_default() {
                    if let Some(item) = item.as_str() {
                        self.rtcp_mux(item);
                    }
                }
            }
            "received-from" => {
                let address = value
                    .as_list()
                    .and_then(|l| l.get(1))
                    .and_then(Value::as_str);
                self.options.received_from = address.and_then(|a| a.parse().ok());
            }
            "media-address" => {
                self.options.media_address = value.as_str().and_then(|a| a.parse().ok())
            }
            "transport-protocol" => self.transport = text(),
            "caller" => {
                let side = text().unwrap_or_default();
                self.options.caller = Some(match normalise(&side).as_str() {
                    "offerer" | "from-tag" => CallerSide::Offerer,
                    "answerer" | "to-tag" => CallerSide::Answerer,
                    _ => return Err(RequestError::UnknownCaller(side)),
                });
            }
            "limit" => {
                self.limit = value
                    .as_int()
                    .and_then(|n| usize::try_from(n).ok())
                    .filter(|&n| n > 0)
            }
            "codec" => {
                for (sub, list) in value.entries().unwrap_or_default() {
                    let sub = normalise(&String::from_utf8_lossy(sub));
                    if sub == "strip" || sub == "mask" {
                        let names = list.as_list().unwrap_or_default();
                        self.options
                            .strip
                            .extend(names.iter().filter_map(Value::as_str).map(str::to_owned));
                    } else {
                        self.unknown.push(format!("codec-{sub}"));
                    }
                }
            }
            k if KNOWN_KEYS.contains(&k) => {}
            _ => self.unknown.push(as_sent.to_owned()),
        }
        Ok(())
    }

    /// One flag, as Kamailio's module writes them in its flags string.
    fn token(&mut self, token: &str) -> Result<(), RequestError> {
        let flag = normalise(token);
        if let Some(what) = flag.strip_prefix("replace-") {
            self.replace(what);
        } else if let Some(how) = flag.strip_prefix("ice=") {
            self.ice(how);
        } else if let Some(how) = flag.strip_prefix("rtcp-mux-") {
            self.rtcp_mux(how);
        } else if let Some(name) = token
            .strip_prefix("codec-strip-")
            .or_else(|| token.strip_prefix("codec-mask-"))
        {
            self.options.strip.push(name.to_owned());
        } else if flag.starts_with("rtp/") || flag.starts_with("udp/tls/") {
            self.transport = Some(token.to_owned());
        } else if flag == "sip-source-address" {
            self.options.sip_source = true;
        } else if flag == "fatal" {
            self.fatal = true;
        } else if let Some((key, value)) = token.split_once('=') {
            // `key=value` tokens are dictionary keys written as flags.
            self.key(&normalise(key), key, &Value::from(value))?;
        } else if !KNOWN_FLAGS.contains(&flag.as_str()) {
            self.unknown.push(token.to_owned());
        }
        Ok(())
    }

    fn replace(&mut self, what: &str) {
        match normalise(what).as_str() {
            "origin" => self.options.replace_origin = true,
            // tonegate always writes its address in every c= line; the other replace flags
            // touch nothing it needs.
            "session-connection"
            | "sdp-version"
            | "username"
            | "session-name"
            | "force-increment-sdp-ver"
            | "zero-address" => {}
            other => self.unknown.push(format!("replace-{other}")),
        }
    }

    fn ice(&mut self, how: &str) {
        match normalise(how).as_str() {
            "remove" | "" => {}
            other => self.warnings.push(format!(
                "ICE={other} ignored: tonegate does not speak ICE and removes ICE attributes"
            )),
        }
    }

    fn rtcp_mux(&mut self, how: &str) {
        match normalise(how).as_str() {
            "offer" | "require" => self.options.rtcp_mux_offer = true,
            "demux" | "reject" => self.options.rtcp_mux_remove = true,
            "accept" => {}
            other => self.unknown.push(format!("rtcp-mux-{other}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ng::bencode::decode;

    fn parse(doc: &[u8]) -> Result<Parsed, RequestError> {
        Parsed::from_value(&decode(doc).unwrap())
    }

    /// An offer as Kamailio's rtpengine module sends it for
    /// `rtpengine_offer("replace-origin replace-session-connection ICE=remove RTP/AVP
    /// trust-address rtcp-mux-demux direction=internal direction=external via-branch=1")`.
    fn kamailio_offer() -> Value {
        Value::dict([
            ("sdp", Value::from("v=0\r\n")),
            ("supports", Value::List(vec![Value::from("load limit")])),
            ("ICE", Value::from("remove")),
            (
                "direction",
                Value::List(vec![Value::from("internal"), Value::from("external")]),
            ),
            ("flags", Value::List(vec![Value::from("trust-address")])),
            (
                "replace",
                Value::List(vec![
                    Value::from("origin"),
                    Value::from("session-connection"),
                ]),
            ),
            ("transport-protocol", Value::from("RTP/AVP")),
            ("rtcp-mux", Value::List(vec![Value::from("demux")])),
            (
                "received-from",
                Value::List(vec![Value::from("IP4"), Value::from("10.0.0.7")]),
            ),
            ("call-id", Value::from("a84b4c76e66710@pc33.example.com")),
            ("via-branch", Value::from("z9hG4bK776asdhds")),
            ("from-tag", Value::from("1928301774")),
            ("command", Value::from("offer")),
            ("sip-message-type", Value::from("sip_request")),
        ])
    }

    #[test]
    fn kamailio_s_default_offer_is_understood_with_nothing_unknown() {
        let parsed = Parsed::from_value(&kamailio_offer()).unwrap();
        let Request::Offer(media) = &parsed.request else {
            panic!("{parsed:?}")
        };
        assert_eq!(media.call_id, "a84b4c76e66710@pc33.example.com");
        assert_eq!(media.from_tag, "1928301774");
        assert_eq!(media.to_tag, None);
        assert!(media.options.replace_origin);
        assert!(media.options.rtcp_mux_remove);
        assert_eq!(
            media.options.received_from,
            Some("10.0.0.7".parse().unwrap())
        );
        // The SDP's address is trusted unless SIP-source-address says otherwise.
        assert_eq!(media.options.media_address_override(), None);
        assert!(parsed.unknown.is_empty(), "{:?}", parsed.unknown);
        assert!(parsed.warnings.is_empty());
    }

    #[test]
    fn a_flags_string_left_to_the_media_proxy_reads_like_the_dictionary() {
        let mut doc = Value::dict([
            ("command", Value::from("answer")),
            ("call-id", Value::from("c")),
            ("from-tag", Value::from("f")),
            ("to-tag", Value::from("t")),
            ("sdp", Value::from("v=0\r\n")),
            (
                "rtpp-flags",
                Value::from(
                    "replace-origin ICE=remove RTP/AVP rtcp-mux-offer SIP-source-address \
                     codec-strip-PCMA media-address=192.0.2.9 frobnicate",
                ),
            ),
        ]);
        doc.insert(
            "received from",
            Value::List(vec![Value::from("IP4"), Value::from("192.0.2.1")]),
        );
        let parsed = Parsed::from_value(&doc).unwrap();
        let Request::Answer(media) = &parsed.request else {
            panic!()
        };
        assert_eq!(media.to_tag.as_deref(), Some("t"));
        assert!(media.options.replace_origin && media.options.rtcp_mux_offer);
        assert!(media.options.sip_source);
        assert_eq!(media.options.strip, ["PCMA"]);
        assert_eq!(
            media.options.media_address_override(),
            Some("192.0.2.9".parse().unwrap()),
            "media address wins over the SIP source"
        );
        assert_eq!(parsed.unknown, ["frobnicate"]);
    }

    #[test]
    fn unknown_keys_and_flags_are_collected_not_refused() {
        let mut doc = kamailio_offer();
        doc.insert("record call", Value::from("yes"));
        doc.insert(
            "flags",
            Value::List(vec![
                Value::from("asymmetric"),
                Value::from("strict source"),
            ]),
        );
        doc.insert("codec", Value::dict([("transcode", Value::List(vec![]))]));
        let parsed = Parsed::from_value(&doc).unwrap();
        assert!(matches!(parsed.request, Request::Offer(_)));
        assert_eq!(
            parsed.unknown,
            ["record call", "asymmetric", "codec-transcode"]
        );
    }

    #[test]
    fn commands_are_read_with_spaces_or_hyphens_in_any_case() {
        for (command, block) in [
            ("block DTMF", true),
            ("unblock DTMF", false),
            ("block-dtmf", true),
        ] {
            let doc = Value::dict([
                ("command", Value::from(command)),
                ("call-id", Value::from("c")),
            ]);
            assert_eq!(
                Parsed::from_value(&doc).unwrap().request,
                Request::BlockDtmf {
                    call_id: "c".into(),
                    from_tag: None,
                    block
                }
            );
        }
        assert_eq!(
            parse(b"d7:command4:liste").unwrap().request,
            Request::List { limit: 32 }
        );
        assert_eq!(
            parse(b"d7:command4:list5:limiti2ee").unwrap().request,
            Request::List { limit: 2 }
        );
        assert_eq!(
            parse(b"d7:command6:delete7:call-id1:c5:flagsl5:fatalee")
                .unwrap()
                .request,
            Request::Delete {
                call_id: "c".into(),
                fatal: true
            }
        );
    }

    #[test]
    fn what_cannot_be_done_says_what_is_missing_or_wrong() {
        assert_eq!(parse(b"le"), Err(RequestError::NotADictionary));
        assert_eq!(parse(b"d3:sdp1:xe"), Err(RequestError::NoCommand));
        let unknown = parse(b"d7:command5:dancee").unwrap_err();
        assert_eq!(unknown, RequestError::UnknownCommand("dance".into()));
        assert!(unknown.to_string().contains("offer, answer, delete"));
        assert_eq!(
            parse(b"d7:command5:offer7:call-id1:c3:sdp1:xe"),
            Err(RequestError::Missing {
                command: "offer",
                key: "from-tag"
            })
        );
        assert_eq!(
            parse(b"d7:command6:answer7:call-id1:c8:from-tag1:f3:sdp1:xe")
                .unwrap_err()
                .to_string(),
            "`answer` needs `to-tag` (a string)"
        );
        let mut srtp = kamailio_offer();
        if let Value::Dict(entries) = &mut srtp {
            entries.retain(|(k, _)| k != b"transport-protocol");
        }
        srtp.insert("transport-protocol", Value::from("RTP/SAVP"));
        let error = Parsed::from_value(&srtp).unwrap_err();
        assert!(matches!(error, RequestError::Srtp(_)));
        assert!(error.to_string().contains("use RTP/AVP"), "{error}");
    }

    #[test]
    fn ice_other_than_remove_is_a_warning_since_ice_attributes_go_anyway() {
        let mut doc = kamailio_offer();
        if let Value::Dict(entries) = &mut doc {
            entries.retain(|(k, _)| k != b"ICE");
        }
        doc.insert("ICE", Value::from("force"));
        let parsed = Parsed::from_value(&doc).unwrap();
        assert_eq!(parsed.warnings.len(), 1);
        assert!(parsed.warnings[0].contains("does not speak ICE"));
    }
}
