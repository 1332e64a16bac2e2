//! Bencode (BEP 3), as the ng protocol uses it: byte strings, integers, lists and dictionaries.
//!
//! Hand-written rather than taken from a crate, for two reasons the ng protocol imposes:
//! dictionaries arrive with their keys in any order (Kamailio's rtpengine module adds `sdp`
//! before `call-id` and `command`, and rtpengine's own documentation says the sorted-key rule is
//! not honoured), which `bendy` refuses by design; and a datagram from the network may nest
//! lists thousands deep, which a decoder without a depth limit (`serde_bencode`) follows until
//! the stack overflows. This decoder keeps dictionary entries in the order they came, refuses
//! nesting deeper than [`MAX_DEPTH`], and says where and why a document is malformed.
//!
//! ```
//! use tonegate::ng::bencode::{decode, Value};
//!
//! let value = decode(b"d7:command4:pinge").unwrap();
//! assert_eq!(value.get("command").and_then(Value::as_str), Some("ping"));
//! let mut out = Vec::new();
//! Value::dict([("result", Value::from("pong"))]).encode(&mut out);
//! assert_eq!(out, b"d6:result4:ponge");
//! ```

/// Deepest nesting accepted. The ng protocol's deepest documents (a `query` answer: tags,
/// medias, streams, stats) nest six levels; 32 leaves room and keeps the recursion shallow.
pub const MAX_DEPTH: usize = 32;

/// A bencoded value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    /// `i42e`.
    Int(i64),
    /// `4:spam`: bytes, not necessarily text.
    Bytes(Vec<u8>),
    /// `l...e`.
    List(Vec<Value>),
    /// `d...e`, entries in the order they came (or were added); keys are byte strings.
    Dict(Vec<(Vec<u8>, Value)>),
}

/// Why a document is not bencode. Each variant says where (a byte offset) and what was found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BencodeError {
    /// The document ends inside a value.
    #[error("the bencoded document ends early, at byte {at}")]
    UnexpectedEnd {
        /// Where it ended.
        at: usize,
    },
    /// A byte that starts no value (`i`, `l`, `d` or a digit are expected).
    #[error("byte {at} is {found:?}: a bencoded value starts with i, l, d or a length")]
    UnexpectedByte {
        /// Where.
        at: usize,
        /// The byte, as a character.
        found: char,
    },
    /// An integer that is not one (`i-0e`, `i03e`, `ie`, out of 64 bits).
    #[error("the integer at byte {at} is malformed")]
    BadInteger {
        /// Where the integer starts.
        at: usize,
    },
    /// A string length that is malformed or runs past the end of the document.
    #[error("the string length at byte {at} is malformed or longer than the document")]
    BadLength {
        /// Where the length starts.
        at: usize,
    },
    /// A dictionary key that is not a byte string.
    #[error("the dictionary key at byte {at} is not a string")]
    KeyNotString {
        /// Where the key starts.
        at: usize,
    },
    /// Lists and dictionaries nested deeper than [`MAX_DEPTH`].
    #[error("values are nested deeper than {MAX_DEPTH} levels (at byte {at})")]
    TooDeep {
        /// Where the limit was crossed.
        at: usize,
    },
    /// Bytes after the end of the document.
    #[error("{extra} bytes follow the end of the bencoded document (at byte {at})")]
    TrailingData {
        /// Where the first extra byte is.
        at: usize,
        /// How many there are.
        extra: usize,
    },
}

/// Decodes one whole document: `input` must hold exactly one value.
pub fn decode(input: &[u8]) -> Result<Value, BencodeError> {
    let mut decoder = Decoder { input, at: 0 };
    let value = decoder.value(0)?;
    if decoder.at != input.len() {
        return Err(BencodeError::TrailingData {
            at: decoder.at,
            extra: input.len() - decoder.at,
        });
    }
    Ok(value)
}

struct Decoder<'a> {
    input: &'a [u8],
    at: usize,
}

impl Decoder<'_> {
    fn peek(&self) -> Result<u8, BencodeError> {
        self.input
            .get(self.at)
            .copied()
            .ok_or(BencodeError::UnexpectedEnd { at: self.at })
    }

    fn value(&mut self, depth: usize) -> Result<Value, BencodeError> {
        match self.peek()? {
            b'i' => self.int().map(Value::Int),
            b'0'..=b'9' => self.bytes().map(Value::Bytes),
            b'l' | b'd' if depth >= MAX_DEPTH => Err(BencodeError::TooDeep { at: self.at }),
            b'l' => {
                self.at += 1;
                let mut items = Vec::new();
                while self.peek()? != b'e' {
                    items.push(self.value(depth + 1)?);
                }
                self.at += 1;
                Ok(Value::List(items))
            }
            b'd' => {
                self.at += 1;
                let mut entries = Vec::new();
                while self.peek()? != b'e' {
                    if !self.peek()?.is_ascii_digit() {
                        return Err(BencodeError::KeyNotString { at: self.at });
                    }
                    let key = self.bytes()?;
                    let value = self.value(depth + 1)?;
                    entries.push((key, value));
                }
                self.at += 1;
                Ok(Value::Dict(entries))
            }
            other => Err(BencodeError::UnexpectedByte {
                at: self.at,
                found: char::from(other),
            }),
        }
    }

    fn int(&mut self) -> Result<i64, BencodeError> {
        let start = self.at;
        let bad = BencodeError::BadInteger { at: start };
        let rest = &self.input[start + 1..];
        let end = rest
            .iter()
            .position(|&b| b == b'e')
            .ok_or(BencodeError::UnexpectedEnd {
                at: self.input.len(),
            })?;
        let digits = std::str::from_utf8(&rest[..end]).map_err(|_| bad.clone())?;
        let unsigned = digits.strip_prefix('-').unwrap_or(digits);
        // BEP 3: no leading zeros, no negative zero, at least one digit.
        if unsigned.is_empty()
            || !unsigned.bytes().all(|b| b.is_ascii_digit())
            || (unsigned.len() > 1 && unsigned.starts_with('0'))
            || digits == "-0"
        {
            return Err(bad);
        }
        let n = digits.parse().map_err(|_| bad)?;
        self.at = start + 1 + end + 1;
        Ok(n)
    }

    fn bytes(&mut self) -> Result<Vec<u8>, BencodeError> {
        let start = self.at;
        let bad = BencodeError::BadLength { at: start };
        let colon = self.input[start..].iter().position(|&b| b == b':').ok_or(
            BencodeError::UnexpectedEnd {
                at: self.input.len(),
            },
        )?;
        let digits = &self.input[start..start + colon];
        if digits.is_empty()
            || !digits.iter().all(u8::is_ascii_digit)
            || (digits.len() > 1 && digits[0] == b'0')
        {
            return Err(bad);
        }
        let len: usize = std::str::from_utf8(digits)
            .ok()
            .and_then(|d| d.parse().ok())
            .ok_or(bad.clone())?;
        let from = start + colon + 1;
        let to = from.checked_add(len).ok_or(bad.clone())?;
        let bytes = self.input.get(from..to).ok_or(bad)?;
        self.at = to;
        Ok(bytes.to_vec())
    }
}

impl Value {
    /// A dictionary of these entries, in this order.
    pub fn dict<K: Into<Vec<u8>>>(entries: impl IntoIterator<Item = (K, Value)>) -> Value {
        Value::Dict(entries.into_iter().map(|(k, v)| (k.into(), v)).collect())
    }

    /// Appends the bencoding of this value to `out`. Dictionary entries are written in their
    /// order (the ng protocol does not need them sorted; answers are built in a readable order).
    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Value::Int(n) => {
                out.push(b'i');
                out.extend_from_slice(n.to_string().as_bytes());
                out.push(b'e');
            }
            Value::Bytes(b) => encode_bytes(b, out),
            Value::List(items) => {
                out.push(b'l');
                for item in items {
                    item.encode(out);
                }
                out.push(b'e');
            }
            Value::Dict(entries) => {
                out.push(b'd');
                for (key, value) in entries {
                    encode_bytes(key, out);
                    value.encode(out);
                }
                out.push(b'e');
            }
        }
    }

    /// In a dictionary, the value of the first entry named `key`.
    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Dict(entries) => entries
                .iter()
                .find(|(k, _)| k == key.as_bytes())
                .map(|(_, v)| v),
            _ => None,
        }
    }

    /// The entries of a dictionary.
    pub fn entries(&self) -> Option<&[(Vec<u8>, Value)]> {
        match self {
            Value::Dict(entries) => Some(entries),
            _ => None,
        }
    }

    /// A byte string that is UTF-8 text.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Bytes(b) => std::str::from_utf8(b).ok(),
            _ => None,
        }
    }

    /// An integer, or a byte string holding one (the ng protocol sends numbers either way).
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(n) => Some(*n),
            Value::Bytes(_) => self.as_str().and_then(|s| s.trim().parse().ok()),
            _ => None,
        }
    }

    /// The items of a list.
    pub fn as_list(&self) -> Option<&[Value]> {
        match self {
            Value::List(items) => Some(items),
            _ => None,
        }
    }

    /// Appends an entry to a dictionary (does nothing to other values).
    pub fn insert(&mut self, key: &str, value: Value) {
        if let Value::Dict(entries) = self {
            entries.push((key.as_bytes().to_vec(), value));
        }
    }
}

fn encode_bytes(b: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(b.len().to_string().as_bytes());
    out.push(b':');
    out.extend_from_slice(b);
}

impl From<&str> for Value {
    fn from(s: &str) -> Value {
        Value::Bytes(s.as_bytes().to_vec())
    }
}

impl From<String> for Value {
    fn from(s: String) -> Value {
        Value::Bytes(s.into_bytes())
    }
}

impl From<i64> for Value {
    fn from(n: i64) -> Value {
        Value::Int(n)
    }
}

impl From<u64> for Value {
    fn from(n: u64) -> Value {
        Value::Int(i64::try_from(n).unwrap_or(i64::MAX))
    }
}

impl From<Vec<Value>> for Value {
    fn from(items: Vec<Value>) -> Value {
        Value::List(items)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(text: &[u8]) -> Value {
        let value = decode(text).unwrap();
        let mut out = Vec::new();
        value.encode(&mut out);
        assert_eq!(out, text, "{}", String::from_utf8_lossy(text));
        value
    }

    #[test]
    fn every_kind_of_value_decodes_and_encodes_back_byte_for_byte() {
        assert_eq!(round_trip(b"i42e"), Value::Int(42));
        assert_eq!(round_trip(b"i-7e"), Value::Int(-7));
        assert_eq!(round_trip(b"i0e"), Value::Int(0));
        assert_eq!(round_trip(b"0:"), Value::Bytes(Vec::new()));
        assert_eq!(round_trip(b"4:spam"), Value::from("spam"));
        assert_eq!(
            round_trip(b"l4:spami1ee"),
            Value::List(vec![Value::from("spam"), Value::Int(1)])
        );
        // Kamailio's key order, unsorted, is kept.
        let offer =
            round_trip(b"d3:sdp5:v=0\r\n8:supportsl10:load limite7:call-id3:abc7:command5:offere");
        assert_eq!(offer.get("command").and_then(Value::as_str), Some("offer"));
        assert_eq!(offer.get("call-id").and_then(Value::as_str), Some("abc"));
        assert_eq!(offer.get("sdp").and_then(Value::as_str), Some("v=0\r\n"));
        assert_eq!(
            offer.entries().unwrap()[0].0,
            b"sdp",
            "entries stay in order"
        );
        // Binary strings are bytes, not text.
        assert_eq!(round_trip(b"2:\xff\x00"), Value::Bytes(vec![0xff, 0]));
        assert_eq!(decode(b"2:\xff\x00").unwrap().as_str(), None);
    }

    #[test]
    fn numbers_are_read_as_integers_or_as_strings_holding_one() {
        assert_eq!(Value::Int(32).as_int(), Some(32));
        assert_eq!(Value::from("32").as_int(), Some(32));
        assert_eq!(Value::from("many").as_int(), None);
    }

    #[test]
    fn malformed_documents_say_where_and_why() {
        use BencodeError::*;
        let cases: &[(&[u8], BencodeError)] = &[
            (b"", UnexpectedEnd { at: 0 }),
            (b"d7:command4:ping", UnexpectedEnd { at: 16 }),
            (b"d7:commande", UnexpectedByte { at: 10, found: 'e' }),
            (b"x", UnexpectedByte { at: 0, found: 'x' }),
            (b"i03e", BadInteger { at: 0 }),
            (b"i-0e", BadInteger { at: 0 }),
            (b"ie", BadInteger { at: 0 }),
            (b"i1x2e", BadInteger { at: 0 }),
            (b"i99999999999999999999e", BadInteger { at: 0 }),
            (b"i42", UnexpectedEnd { at: 3 }),
            (b"5:abc", BadLength { at: 0 }),
            (b"05:abcde", BadLength { at: 0 }),
            (b"99999999999999999999999:a", BadLength { at: 0 }),
            (b"di1ei2ee", KeyNotString { at: 1 }),
            (b"i1ei2e", TrailingData { at: 3, extra: 3 }),
        ];
        for (input, want) in cases {
            assert_eq!(
                decode(input).as_ref(),
                Err(want),
                "{}",
                String::from_utf8_lossy(input)
            );
            // The message is for a person: it names the offset.
            assert!(want.to_string().contains("byte"), "{want}");
        }
    }

    #[test]
    fn nesting_is_bounded_so_a_hostile_datagram_cannot_exhaust_the_stack() {
        let deep = |n: usize| {
            let mut doc = vec![b'l'; n];
            doc.extend(std::iter::repeat_n(b'e', n));
            doc
        };
        assert!(decode(&deep(MAX_DEPTH)).is_ok());
        assert_eq!(
            decode(&deep(MAX_DEPTH + 1)),
            Err(BencodeError::TooDeep { at: MAX_DEPTH })
        );
        // A whole datagram of nesting is refused at the limit, not followed.
        assert!(matches!(
            decode(&deep(30_000)),
            Err(BencodeError::TooDeep { .. })
        ));
    }

    #[test]
    fn dictionaries_are_built_and_extended_in_order() {
        let mut d = Value::dict([("result", Value::from("ok"))]);
        d.insert("calls", Value::List(vec![Value::from("a")]));
        d.insert("n", Value::from(3u64));
        let mut out = Vec::new();
        d.encode(&mut out);
        assert_eq!(out, b"d6:result2:ok5:callsl1:ae1:ni3ee");
    }
}
