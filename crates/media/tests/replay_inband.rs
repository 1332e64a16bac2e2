//! A capture replayed end to end with in-band tones in its PCMU audio: the tone is found, and
//! a tone that is also sent as RFC 4733 events on the same stream is one key press, not two
//! (the FreeSWITCH #2560 / rtpengine #1123 bug).

use std::time::Duration;

use tonegate_media::capture::Frame;
use tonegate_media::g711::Law;
use tonegate_media::key::Source;
use tonegate_media::replay::{Replay, ReplayConfig};
use tonegate_media::rfc4733::EventPayload;
use tonegate_media::udp::LinkType;
use tonegate_media::Key;
use tonegate_testkit::capture::udp_frame;
use tonegate_testkit::tone;

const SSRC: u32 = 0x1234_5678;

fn rtp(seq: u16, pt: u8, ts: u32, payload: &[u8]) -> Vec<u8> {
    tonegate_testkit::rtp::packet(pt, false, seq, ts, SSRC, payload)
}

/// One second of PCMU with key 7 (852 + 1209 Hz, -10 dBm0) from 300 to 420 ms, and, when
/// `events`, the same press as RFC 4733 events (every 20 ms, end sent three times). Returns
/// (arrival, packet) in sending order.
fn call(events: bool) -> Vec<(Duration, Vec<u8>)> {
    let a = tone::amplitude(-10.0);
    let (low, high) = Key::from_char('7').unwrap().frequencies();
    let (low, high) = (f64::from(low), f64::from(high));
    let audio: Vec<u8> = (0..8000)
        .map(|n| {
            let t = f64::from(n) / 8000.0;
            let on = (2400..3360).contains(&n);
            let v = if on {
                a * ((2.0 * std::f64::consts::PI * low * t).sin()
                    + (2.0 * std::f64::consts::PI * high * t + 1.0).sin())
            } else {
                0.0
            };
            Law::Mu.encode(v as i16)
        })
        .collect();
    let mut seq = 100u16;
    let mut out = Vec::new();
    let ts0 = 50_000u32;
    for (i, chunk) in audio.chunks(160).enumerate() {
        let ts = ts0 + 160 * i as u32;
        let at = Duration::from_millis(20 * i as u64);
        out.push((at, rtp(seq, 0, ts, chunk)));
        seq += 1;
        // Events of the press start at 2400 and last 960 samples.
        if events && (2400..=3360 + 320).contains(&(ts - ts0)) && ts - ts0 > 2400 {
            let d = (ts - ts0 - 2400).min(960);
            let end = ts - ts0 >= 3360;
            let payload = EventPayload {
                code: 7,
                end,
                volume: 10,
                duration: d as u16,
            }
            .to_bytes();
            out.push((at, rtp(seq, 101, ts0 + 2400, &payload)));
            seq += 1;
        }
    }
    out
}

fn replay(packets: &[(Duration, Vec<u8>)], inband: bool) -> (Vec<(char, Source)>, u64) {
    let mut config = ReplayConfig::default();
    config.audio.enabled = inband;
    let mut r = Replay::new(config, std::time::Instant::now());
    let mut presses = Vec::new();
    for (i, (at, packet)) in packets.iter().enumerate() {
        // Raw IPv4 + UDP around the RTP packet, 10.0.0.1:4000 -> 10.0.0.2:5000.
        let data = udp_frame(
            "10.0.0.1:4000".parse().unwrap(),
            "10.0.0.2:5000".parse().unwrap(),
            packet,
        );
        r.handle_frame(&Frame {
            number: i as u64 + 1,
            timestamp: *at,
            link: LinkType::Ipv4,
            data: &data,
        });
        presses.extend(
            r.drain_presses()
                .map(|p| (p.press.key().as_char(), p.press.source())),
        );
    }
    let (streams, _) = r.finish();
    presses.extend(
        r.drain_presses()
            .map(|p| (p.press.key().as_char(), p.press.source())),
    );
    let merged = streams.iter().map(|s| s.merged).sum();
    (presses, merged)
}

#[test]
fn a_tone_in_pcmu_audio_is_a_press() {
    let (presses, merged) = replay(&call(false), true);
    assert_eq!(presses, vec![('7', Source::Inband)]);
    assert_eq!(merged, 0);
}

#[test]
fn a_tone_also_sent_as_rfc4733_events_is_one_press() {
    let (presses, merged) = replay(&call(true), true);
    assert_eq!(presses.len(), 1, "{presses:?}");
    assert_eq!(presses[0].0, '7');
    assert_eq!(merged, 1);
    // Without in-band detection the events alone give the press.
    let (presses, _) = replay(&call(true), false);
    assert_eq!(presses, vec![('7', Source::Rfc4733)]);
}
