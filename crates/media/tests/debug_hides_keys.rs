//! `Debug` of the listening path never tells which keys were pressed: the RFC 4733 decoder,
//! the in-band detector, an audio stream, the press merger and the listener are formatted after
//! every 20 ms of a call in which each of the 16 keys is pressed (as telephone-events and as
//! tones at once), and the outputs must be the same, step by step, whatever order the keys
//! came in. A derived `Debug` over an event code, a row or column, a bin energy or a sample
//! differs between the two runs.

use std::f64::consts::PI;
use std::time::{Duration, Instant};

use rtp_types::RtpPacketBuilder;
use tonegate_media::audio::{AudioCodec, AudioStream};
use tonegate_media::dedup::PressMerger;
use tonegate_media::g711::linear_to_ulaw;
use tonegate_media::inband::{InbandDetector, InbandEvent};
use tonegate_media::listener::{Listener, ListenerConfig};
use tonegate_media::rfc4733::{DecoderConfig, DecoderEvent, EventPayload, Rfc4733Decoder};
use tonegate_media::{ClockRate, Key, MediaTime, Millis};

const KEYS: &str = "123A456B789C*0#D";
const LOW: [f64; 4] = [697.0, 770.0, 852.0, 941.0];
const HIGH: [f64; 4] = [1209.0, 1336.0, 1477.0, 1633.0];
/// 20 ms at 8 kHz.
const PTIME: u32 = 160;
/// Each key: 100 ms of tone and events, then 100 ms of silence.
const ON: u32 = 5;
const PERIOD: u32 = 10;

/// 20 ms of audio at `step`: the tone of `key` (about -10 dBm0 per tone) or silence.
fn samples(key: Option<char>, step: u32) -> Vec<i16> {
    (0..PTIME)
        .map(|i| {
            let Some(key) = key else { return 0 };
            let k = KEYS.find(key).unwrap();
            let t = f64::from(step * PTIME + i) / 8000.0;
            let v = (2.0 * PI * LOW[k / 4] * t).sin() + (2.0 * PI * HIGH[k % 4] * t).sin();
            (v * 5000.0) as i16
        })
        .collect()
}

fn rtp(pt: u8, marker: bool, seq: u16, ts: u32, payload: &[u8]) -> Vec<u8> {
    RtpPacketBuilder::<&[u8], &[u8]>::new()
        .payload_type(pt)
        .marker_bit(marker)
        .sequence_number(seq)
        .timestamp(ts)
        .ssrc(0x1234)
        .payload(payload)
        .write_vec()
        .unwrap()
}

/// The `Debug` of each part after every step of a call pressing `keys` in order.
fn debug_trace(base: Instant, keys: &str) -> Vec<String> {
    let keys: Vec<char> = keys.chars().collect();
    let mut decoder = Rfc4733Decoder::new(DecoderConfig::default());
    let mut detector = InbandDetector::default();
    let mut audio = AudioStream::new(Millis(60.0), InbandDetector::default());
    let mut merger = PressMerger::new();
    let mut listener = Listener::new(ListenerConfig::default());
    let mut seq = 0u16;
    let mut trace = Vec::new();
    let steps = keys.len() as u32 * PERIOD + 20;
    for step in 0..steps {
        let now = base + Duration::from_millis(u64::from(step) * 20);
        let ts = step * PTIME;
        let index = (step / PERIOD) as usize;
        let phase = step % PERIOD;
        let key = keys.get(index).copied().filter(|_| phase < ON);

        let linear = samples(key, step);
        let ulaw: Vec<u8> = linear.iter().map(|&s| linear_to_ulaw(s)).collect();
        let audio_packet = rtp(0, false, seq, ts, &ulaw);
        seq = seq.wrapping_add(1);
        detector
            .handle_samples(
                MediaTime::new(u64::from(ts), ClockRate::NARROWBAND),
                &linear,
            )
            .unwrap();
        audio.handle_rtp(ts, Some(AudioCodec::Pcmu), &ulaw);
        listener.handle_packet(now, &audio_packet).unwrap();

        // Telephone-events for the key: updates, then the end packet three times.
        if let Some(k) = keys.get(index).filter(|_| phase <= ON) {
            let code = event_code(Key::from_char(*k).unwrap());
            let start = index as u32 * PERIOD * PTIME;
            let end = phase == ON;
            let duration = if end { ON * PTIME } else { (phase + 1) * PTIME };
            let payload = EventPayload {
                code,
                end,
                volume: 10,
                duration: duration as u16,
            }
            .to_bytes();
            for _ in 0..if end { 3 } else { 1 } {
                let packet = rtp(101, phase == 0, seq, start, &payload);
                seq = seq.wrapping_add(1);
                decoder.handle_packet(now, &packet).unwrap();
                listener.handle_packet(now, &packet).unwrap();
            }
        }
        decoder.handle_timeout(now);
        listener.handle_timeout(now);

        while let Some(event) = decoder.poll_event() {
            if let DecoderEvent::Press { press, .. } = event {
                merger.offer(press);
            }
        }
        while detector.poll_event().is_some() {}
        while let Some(event) = audio.poll_event() {
            if let InbandEvent::Press(press) = event {
                merger.offer(press.press);
            }
        }
        let mut presses = 0;
        while listener.poll_event().is_some() {
            presses += 1;
        }
        trace.push(format!(
            "step {step}: {decoder:?}\n{detector:?}\n{audio:?}\n{merger:?}\n{listener:?}\n\
             listener events {presses}"
        ));
    }
    trace
}

/// The RFC 4733 event code of a key (0-9, * 10, # 11, A-D 12-15).
fn event_code(key: Key) -> u8 {
    match key.as_char() {
        d @ '0'..='9' => d as u8 - b'0',
        '*' => 10,
        '#' => 11,
        l => l as u8 - b'A' + 12,
    }
}

#[test]
fn debug_output_is_the_same_whatever_keys_were_pressed() {
    let base = Instant::now();
    let first = debug_trace(base, "0123456789*#ABCD");
    let second = debug_trace(base, "DCBA#*9876543210");
    for (a, b) in first.iter().zip(&second) {
        assert_eq!(a, b, "Debug output depends on the keys pressed");
    }
    // The call was heard: every press was reported both ways and merged into one.
    let last = first.last().unwrap();
    assert!(
        last.contains("PressMerger { remembered: 8, merged: 16 }"),
        "{last}"
    );
    assert!(last.contains("presses_rfc4733: 16"), "{last}");
}
