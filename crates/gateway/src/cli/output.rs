//! What `replay` prints for captures and WAVs alike.

use tonegate_media::rfc4733::Ending;

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
