//! rtpengine's ng control protocol, the way Kamailio's and OpenSIPS's `rtpengine` modules
//! drive a media proxy (`docs/serve.md`, "The ng protocol"): the wire format and the requests,
//! without sockets. `serve`'s ng listener is the runtime around it.
//!
//! ```text
//!  datagram: COOKIE SP BENCODED-DICT ──► split ──► bencode::decode ──► request::Parsed
//!                                          │ (no cookie: dropped)        │ (command, keys, options;
//!                                          ▼                             │  unknown flags collected)
//!                               cache::ReplyCache ◄── answer ◄── the gateway carries it out
//!                               (a retransmitted cookie gets        │
//!                                the kept answer, byte for byte)    ▼
//!                                                    frame: COOKIE SP BENCODED-DICT
//! ```
//!
//! | module | concept |
//! |---|---|
//! | [`bencode`] | the codec: values, decoding with a depth limit, encoding |
//! | [`request`] | a request's command, keys and options; what is not understood |
//! | [`cache`] | answers kept for retransmissions, bounded in count and time |

pub mod bencode;
pub mod cache;
pub mod request;

use bencode::Value;

/// The longest cookie accepted (Kamailio's are a few dozen bytes; rtpengine's buffer is 128).
pub const MAX_COOKIE: usize = 128;

/// Splits a datagram into its cookie and its document: `cookie SP document`. `None` when there
/// is no cookie to answer to (no space, an empty or overlong cookie): such a datagram cannot
/// be answered and is dropped.
pub fn split(datagram: &[u8]) -> Option<(&[u8], &[u8])> {
    let space = datagram.iter().position(|&b| b == b' ')?;
    let (cookie, rest) = (&datagram[..space], &datagram[space + 1..]);
    (!cookie.is_empty() && cookie.len() <= MAX_COOKIE).then_some((cookie, rest))
}

/// The datagram answering `cookie` with `answer`.
pub fn frame(cookie: &[u8], answer: &Value) -> Vec<u8> {
    let mut out = Vec::with_capacity(cookie.len() + 64);
    out.extend_from_slice(cookie);
    out.push(b' ');
    answer.encode(&mut out);
    out
}

/// `{"result": "error", "error-reason": reason}`: the only keys of an error answer.
pub fn error_answer(reason: impl Into<String>) -> Value {
    Value::dict([
        ("result", Value::from("error")),
        ("error-reason", Value::from(reason.into())),
    ])
}

/// `{"result": "ok"}`, to which a command adds its keys.
pub fn ok_answer() -> Value {
    Value::dict([("result", Value::from("ok"))])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_datagram_is_a_cookie_a_space_and_a_document() {
        assert_eq!(
            split(b"5323_1 d7:command4:pinge"),
            Some((&b"5323_1"[..], &b"d7:command4:pinge"[..]))
        );
        // The document may itself hold spaces.
        assert_eq!(
            split(b"c d7:command10:block DTMFe").map(|(_, d)| d),
            Some(&b"d7:command10:block DTMFe"[..])
        );
        assert_eq!(split(b"d7:command4:pinge"), None, "no cookie");
        assert_eq!(split(b" d7:command4:pinge"), None, "empty cookie");
        assert_eq!(split(&[b'x'; 200]), None);
        let mut long = vec![b'x'; MAX_COOKIE + 1];
        long.extend_from_slice(b" de");
        assert_eq!(split(&long), None, "overlong cookie");
    }

    #[test]
    fn answers_echo_the_cookie() {
        let pong = Value::dict([("result", Value::from("pong"))]);
        assert_eq!(frame(b"5323_1", &pong), b"5323_1 d6:result4:ponge");
        assert_eq!(
            frame(b"c", &error_answer("no")),
            b"c d6:result5:error12:error-reason2:noe"
        );
    }
}
