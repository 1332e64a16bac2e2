//! What `replay` prints for captures and WAVs alike.

use tonegate_media::rfc4733::Ending;
use tonegate_media::Key;

/// The stable name of how a press ended, as `replay` prints it.
pub(crate) fn ending_name(ending: Ending) -> &'static str {
    match ending {
        Ending::EndPacket => "end-packet",
        Ending::NextEvent => "next-event",
        Ending::MediaTimeout => "media-timeout",
        Ending::IdleTimeout => "idle-timeout",
        Ending::EndOfInput => "end-of-input",
        Ending::ToneEnd => "tone-end",
    }
}

/// Milliseconds to the microsecond, so JSON shows 120.0 rather than 119.99999999.
pub(crate) fn round3(ms: f64) -> f64 {
    (ms * 1000.0).round() / 1000.0
}

/// How `replay` prints a key: `*`, `#` and `A`-`D` as they are; a digit as itself only with
/// `--show-keys`, otherwise as `?`. A capture or recording of a real payment holds the card
/// number, expiry and security code as digits; the production binary does not print them
/// unless the operator asks (`docs/replay.md`, "Card data in captures").
pub(crate) fn key_label(key: Key, show_keys: bool) -> String {
    let c = key.as_char();
    if c.is_ascii_digit() && !show_keys {
        "?".to_owned()
    } else {
        c.to_string()
    }
}
