//! A SIP proxy's side of rtpengine's ng protocol, as Kamailio's `rtpengine` module speaks it:
//! `COOKIE SP BENCODED-DICT` over UDP, answers matched by cookie.
//!
//! Its bencode is its own, written from BEP 3 for the tests (encode what a proxy sends, decode
//! what comes back) and deliberately independent of the gateway's codec, so that a test talking
//! to tonegate through it checks tonegate's wire format against a second reading of the spec.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{bail, Context};
use tokio::net::UdpSocket;

/// A bencoded value, as the proxy sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Bencode {
    /// An integer.
    Int(i64),
    /// A byte string.
    Bytes(Vec<u8>),
    /// A list.
    List(Vec<Bencode>),
    /// A dictionary, in the order written.
    Dict(Vec<(Vec<u8>, Bencode)>),
}

impl Bencode {
    /// A text string.
    pub fn text(s: &str) -> Bencode {
        Bencode::Bytes(s.as_bytes().to_vec())
    }

    /// A list of text strings.
    pub fn texts(items: &[&str]) -> Bencode {
        Bencode::List(items.iter().map(|s| Bencode::text(s)).collect())
    }

    /// A dictionary of these entries, in this order.
    pub fn dict(entries: &[(&str, Bencode)]) -> Bencode {
        Bencode::Dict(
            entries
                .iter()
                .map(|(k, v)| (k.as_bytes().to_vec(), v.clone()))
                .collect(),
        )
    }

    /// The bencoding.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.write(&mut out);
        out
    }

    fn write(&self, out: &mut Vec<u8>) {
        let bytes = |b: &[u8], out: &mut Vec<u8>| {
            out.extend(format!("{}:", b.len()).bytes());
            out.extend_from_slice(b);
        };
        match self {
            Bencode::Int(n) => out.extend(format!("i{n}e").bytes()),
            Bencode::Bytes(b) => bytes(b, out),
            Bencode::List(items) => {
                out.push(b'l');
                items.iter().for_each(|i| i.write(out));
                out.push(b'e');
            }
            Bencode::Dict(entries) => {
                out.push(b'd');
                for (k, v) in entries {
                    bytes(k, out);
                    v.write(out);
                }
                out.push(b'e');
            }
        }
    }

    /// Decodes a whole document.
    pub fn decode(input: &[u8]) -> anyhow::Result<Bencode> {
        let (value, rest) = Self::read(input, 0)?;
        if !rest.is_empty() {
            bail!("{} bytes after the document", rest.len());
        }
        Ok(value)
    }

    fn read(input: &[u8], depth: usize) -> anyhow::Result<(Bencode, &[u8])> {
        if depth > 64 {
            bail!("nested too deep");
        }
        match input.first().context("the document ends early")? {
            b'i' => {
                let end = input.iter().position(|&b| b == b'e').context("no end")?;
                let n = std::str::from_utf8(&input[1..end])?.parse()?;
                Ok((Bencode::Int(n), &input[end + 1..]))
            }
            b'0'..=b'9' => {
                let colon = input.iter().position(|&b| b == b':').context("no colon")?;
                let len: usize = std::str::from_utf8(&input[..colon])?.parse()?;
                let body = input
                    .get(colon + 1..colon + 1 + len)
                    .context("the string runs past the end")?;
                Ok((Bencode::Bytes(body.to_vec()), &input[colon + 1 + len..]))
            }
            b'l' => {
                let mut rest = &input[1..];
                let mut items = Vec::new();
                while rest.first() != Some(&b'e') {
                    let (item, r) = Self::read(rest, depth + 1)?;
                    items.push(item);
                    rest = r;
                }
                Ok((Bencode::List(items), &rest[1..]))
            }
            b'd' => {
                let mut rest = &input[1..];
                let mut entries = Vec::new();
                while rest.first() != Some(&b'e') {
                    let (Bencode::Bytes(key), r) = Self::read(rest, depth + 1)? else {
                        bail!("a dictionary key that is not a string");
                    };
                    let (value, r) = Self::read(r, depth + 1)?;
                    entries.push((key, value));
                    rest = r;
                }
                Ok((Bencode::Dict(entries), &rest[1..]))
            }
            other => bail!("unexpected byte {:?}", char::from(*other)),
        }
    }

    /// In a dictionary, the value of `key`.
    pub fn get(&self, key: &str) -> Option<&Bencode> {
        match self {
            Bencode::Dict(entries) => entries
                .iter()
                .find(|(k, _)| k == key.as_bytes())
                .map(|(_, v)| v),
            _ => None,
        }
    }

    /// A string's text.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Bencode::Bytes(b) => std::str::from_utf8(b).ok(),
            _ => None,
        }
    }

    /// An integer.
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Bencode::Int(n) => Some(*n),
            _ => None,
        }
    }

    /// A list's items.
    pub fn as_list(&self) -> Option<&[Bencode]> {
        match self {
            Bencode::List(items) => Some(items),
            _ => None,
        }
    }

    /// `get(key)` as text.
    pub fn text_of(&self, key: &str) -> Option<&str> {
        self.get(key).and_then(Bencode::as_str)
    }
}

/// A proxy's ng socket, talking to one media proxy.
pub struct NgClient {
    socket: UdpSocket,
    to: SocketAddr,
    next: u64,
    /// How long to wait for an answer.
    pub timeout: Duration,
}

impl NgClient {
    /// A client on 127.0.0.1 talking to the ng listener at `to`.
    pub async fn new(to: SocketAddr) -> anyhow::Result<NgClient> {
        Ok(NgClient {
            socket: UdpSocket::bind("127.0.0.1:0").await?,
            to,
            next: 1,
            timeout: Duration::from_secs(5),
        })
    }

    /// Sends `datagram` as it is and returns the answer's datagram.
    pub async fn exchange(&self, datagram: &[u8]) -> anyhow::Result<Vec<u8>> {
        self.socket.send_to(datagram, self.to).await?;
        let mut buf = vec![0u8; 65_536];
        let (n, _) = tokio::time::timeout(self.timeout, self.socket.recv_from(&mut buf))
            .await
            .context("no ng answer in time")??;
        buf.truncate(n);
        Ok(buf)
    }

    /// Sends `request` with `cookie`; the answer's whole datagram and its dictionary. Fails
    /// when the answer does not echo the cookie.
    pub async fn send(
        &self,
        cookie: &str,
        request: &Bencode,
    ) -> anyhow::Result<(Vec<u8>, Bencode)> {
        let mut datagram = format!("{cookie} ").into_bytes();
        datagram.extend(request.encode());
        let answer = self.exchange(&datagram).await?;
        let document = answer
            .strip_prefix(format!("{cookie} ").as_bytes())
            .with_context(|| {
                format!(
                    "the answer does not echo the cookie `{cookie}`: {}",
                    String::from_utf8_lossy(&answer)
                )
            })?;
        let dict = Bencode::decode(document)?;
        Ok((answer, dict))
    }

    /// Sends `request` with a fresh cookie, the way Kamailio numbers them; the answer.
    pub async fn request(&mut self, request: &Bencode) -> anyhow::Result<Bencode> {
        let cookie = format!("{}_{}", std::process::id(), self.next);
        self.next += 1;
        Ok(self.send(&cookie, request).await?.1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_is_written_is_read_back() {
        let d = Bencode::dict(&[
            ("command", Bencode::text("offer")),
            ("flags", Bencode::texts(&["trust-address"])),
            ("n", Bencode::Int(-3)),
        ]);
        let bytes = d.encode();
        assert_eq!(bytes, b"d7:command5:offer5:flagsl13:trust-addresse1:ni-3ee");
        assert_eq!(Bencode::decode(&bytes).unwrap(), d);
        assert_eq!(d.text_of("command"), Some("offer"));
    }
}
