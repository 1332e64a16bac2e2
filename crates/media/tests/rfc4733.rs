//! The RFC 4733 decoder seen from outside, one test per pitfall real senders fall into.
//! Each builds the packets a misbehaving (or correct) sender puts on the wire.

use std::time::{Duration, Instant};

use rtp_types::RtpPacketBuilder;
use tonegate_media::red::wrap_red;
use tonegate_media::rfc4733::{
    DecoderConfig, DecoderEvent, Ending, EventPayload, Rfc4733Decoder, Rfc4733Error,
};
use tonegate_media::sdp::SdpPayloadTypes;

/// 20 ms of 8 kHz audio.
const PTIME: u32 = 160;

struct Sender {
    ssrc: u32,
    seq: u16,
    pt: u8,
    marker_first: bool,
}

impl Sender {
    fn new(ssrc: u32, first_seq: u16) -> Sender {
        Sender {
            ssrc,
            seq: first_seq,
            pt: 101,
            marker_first: true,
        }
    }

    fn packet(&mut self, pt: u8, marker: bool, ts: u32, payload: &[u8]) -> Vec<u8> {
        let bytes = RtpPacketBuilder::<&[u8], &[u8]>::new()
            .payload_type(pt)
            .marker_bit(marker)
            .sequence_number(self.seq)
            .timestamp(ts)
            .ssrc(self.ssrc)
            .payload(payload)
            .write_vec()
            .unwrap();
        self.seq = self.seq.wrapping_add(1);
        bytes
    }

    fn event(&mut self, ts: u32, code: u8, end: bool, duration: u16) -> Vec<u8> {
        let payload = EventPayload {
            code,
            end,
            volume: 10,
            duration,
        }
        .to_bytes();
        let marker = self.marker_first && duration <= PTIME as u16 && !end;
        self.packet(self.pt, marker, ts, &payload)
    }

    fn audio(&mut self, ts: u32) -> Vec<u8> {
        self.packet(0, false, ts, &[0xFF; 160])
    }

    /// A well-behaved press: updates every 20 ms, end packet three times. Returns the packets
    /// with their media time (in ticks from `ts`) as arrival offsets.
    fn press(&mut self, ts: u32, code: u8, ms: u32) -> Vec<(u32, Vec<u8>)> {
        let total = ms * 8;
        let mut out = Vec::new();
        let mut d = PTIME;
        while d < total {
            out.push((ts.wrapping_add(d), self.event(ts, code, false, d as u16)));
            d += PTIME;
        }
        for _ in 0..3 {
            out.push((
                ts.wrapping_add(total),
                self.event(ts, code, true, total as u16),
            ));
        }
        out
    }
}

#[derive(Debug, PartialEq)]
struct Seen {
    key: char,
    start: u64,
    ms: f64,
    ending: Ending,
}

/// Feeds packets that arrive `arrival_ms` after an origin, then ends the input.
fn decode(config: DecoderConfig, packets: &[(u64, Vec<u8>)]) -> (Vec<Seen>, Vec<DecoderEvent>) {
    let origin = Instant::now();
    let mut decoder = Rfc4733Decoder::new(config);
    let mut events = Vec::new();
    for (arrival_ms, packet) in packets {
        let now = origin + Duration::from_millis(*arrival_ms);
        if decoder.poll_timeout().is_some_and(|t| t <= now) {
            decoder.handle_timeout(now);
        }
        decoder.handle_packet(now, packet).unwrap();
        events.extend(std::iter::from_fn(|| decoder.poll_event()));
    }
    decoder.finish();
    events.extend(std::iter::from_fn(|| decoder.poll_event()));
    let presses = events
        .iter()
        .filter_map(|e| match e {
            DecoderEvent::Press {
                ssrc,
                press,
                ending,
            } => Some(Seen {
                key: press.key().as_char(),
                start: press.start().ticks() - decoder.origin(*ssrc).unwrap().ticks(),
                ms: press.duration().as_millis().0,
                ending: *ending,
            }),
            _ => None,
        })
        .collect();
    (presses, events)
}

/// Arrival in ms equal to media time (ticks / 8), for senders on a steady clock.
fn timed(packets: Vec<(u32, Vec<u8>)>, ts0: u32) -> Vec<(u64, Vec<u8>)> {
    packets
        .into_iter()
        .map(|(ts, p)| (u64::from(ts.wrapping_sub(ts0)) / 8, p))
        .collect()
}

fn keys(seen: &[Seen]) -> String {
    seen.iter().map(|s| s.key).collect()
}

#[test]
fn an_end_packet_sent_three_times_is_one_press() {
    let mut tx = Sender::new(1, 100);
    let (seen, _) = decode(DecoderConfig::default(), &timed(tx.press(0, 5, 100), 0));
    assert_eq!(
        seen,
        vec![Seen {
            key: '5',
            start: 0,
            ms: 100.0,
            ending: Ending::EndPacket
        }]
    );
}

#[test]
fn a_press_whose_end_packets_are_lost_ends_when_media_time_moves_on() {
    let mut tx = Sender::new(1, 100);
    let mut packets = tx.press(0, 7, 100);
    packets.retain(|(_, p)| p[13] & 0x80 == 0); // every end packet lost
    for i in 5..30 {
        packets.push((i * PTIME, tx.audio(i * PTIME)));
    }
    let origin = Instant::now();
    let mut decoder = Rfc4733Decoder::new(DecoderConfig::default());
    let mut before_end_of_input = Vec::new();
    for (ts, p) in &packets {
        decoder
            .handle_packet(origin + Duration::from_millis(u64::from(*ts) / 8), p)
            .unwrap();
        before_end_of_input.extend(std::iter::from_fn(|| decoder.poll_event()));
    }
    let press = before_end_of_input
        .iter()
        .find_map(|e| match e {
            DecoderEvent::Press { press, ending, .. } => Some((press.clone(), *ending)),
            _ => None,
        })
        .expect("the press is reported while media flows, not at end of input");
    assert_eq!(press.0.key().as_char(), '7');
    assert_eq!(press.1, Ending::MediaTimeout);
    assert_eq!(press.0.duration().as_millis().0, 80.0, "last duration seen");
}

#[test]
fn a_press_whose_end_packets_are_lost_ends_at_the_next_event() {
    let mut tx = Sender::new(1, 100);
    let mut packets = tx.press(0, 1, 100);
    packets.retain(|(_, p)| p[13] & 0x80 == 0);
    packets.extend(tx.press(1440, 2, 100));
    let (seen, _) = decode(DecoderConfig::default(), &timed(packets, 0));
    assert_eq!(keys(&seen), "12");
    assert_eq!(seen[0].ending, Ending::NextEvent);
    assert_eq!(seen[0].ms, 80.0);
    assert_eq!(seen[1].start, 1440);
}

#[test]
fn a_press_whose_end_packets_are_lost_ends_on_the_wall_clock_when_media_stops() {
    let mut tx = Sender::new(1, 100);
    let mut packets = tx.press(0, 9, 100);
    packets.retain(|(_, p)| p[13] & 0x80 == 0);
    let origin = Instant::now();
    let mut decoder = Rfc4733Decoder::new(DecoderConfig::default());
    for (ts, p) in &packets {
        decoder
            .handle_packet(origin + Duration::from_millis(u64::from(*ts) / 8), p)
            .unwrap();
    }
    assert!(decoder
        .poll_event()
        .is_some_and(|e| matches!(e, DecoderEvent::PressStarted { .. })));
    assert!(decoder.poll_event().is_none(), "still held: no end yet");
    let deadline = decoder
        .poll_timeout()
        .expect("an open press asks for a timeout");
    assert_eq!(
        deadline,
        origin + Duration::from_millis(80) + Duration::from_secs(1)
    );
    decoder.handle_timeout(deadline - Duration::from_millis(1));
    assert!(decoder.poll_event().is_none(), "not before the deadline");
    decoder.handle_timeout(deadline);
    match decoder.poll_event() {
        Some(DecoderEvent::Press { press, ending, .. }) => {
            assert_eq!(press.key().as_char(), '9');
            assert_eq!(ending, Ending::IdleTimeout);
        }
        other => panic!("expected the press, got {other:?}"),
    }
    assert_eq!(decoder.poll_timeout(), None);
}

#[test]
fn an_event_made_only_of_end_packets_is_a_press() {
    let mut tx = Sender::new(1, 100);
    let mut packets = Vec::new();
    for (i, code) in [3u8, 6, 9].into_iter().enumerate() {
        let ts = i as u32 * 1600;
        for _ in 0..3 {
            packets.push((ts + 800, tx.event(ts, code, true, 800)));
        }
    }
    let (seen, events) = decode(DecoderConfig::default(), &timed(packets, 0));
    assert_eq!(keys(&seen), "369");
    assert!(seen.iter().all(|s| s.ms == 100.0));
    let started = events
        .iter()
        .filter(|e| matches!(e, DecoderEvent::PressStarted { .. }))
        .count();
    assert_eq!(started, 3, "each press also reports its start");
}

#[test]
fn the_marker_bit_is_not_needed_and_not_trusted() {
    for marker in [false, true] {
        let mut tx = Sender::new(1, 100);
        tx.marker_first = false;
        let mut packets = tx.press(0, 1, 100);
        packets.extend(tx.press(1600, 2, 100));
        if marker {
            for (_, p) in &mut packets {
                p[1] |= 0x80;
            }
        }
        let (seen, _) = decode(DecoderConfig::default(), &timed(packets, 0));
        assert_eq!(keys(&seen), "12", "marker on every packet: {marker}");
        assert_eq!(seen[0].ms, 100.0);
    }
}

#[test]
fn reordered_and_duplicated_packets_give_each_press_once() {
    let mut tx = Sender::new(1, 100);
    let mut packets = tx.press(0, 0, 120);
    packets.extend(tx.press(1600, 11, 120));
    let mut shuffled = Vec::new();
    for pair in packets.chunks(2) {
        // Swap every pair, and send every third packet twice.
        for (i, p) in pair.iter().rev().enumerate() {
            shuffled.push(p.clone());
            if i % 3 == 0 {
                shuffled.push(p.clone());
            }
        }
    }
    // The first end packet of the first press now arrives before the last update.
    let (seen, _) = decode(DecoderConfig::default(), &timed(shuffled, 0));
    assert_eq!(keys(&seen), "0#");
    assert_eq!(seen[0].ms, 120.0);
    assert_eq!(seen[1].ms, 120.0);
    assert_eq!(seen[1].start, 1600);
}

#[test]
fn timestamps_and_sequence_numbers_wrap_without_splitting_or_losing_presses() {
    let ts0 = 0xFFFF_FC00u32; // wraps 128 ms in
    let mut tx = Sender::new(1, 65530); // wraps after 6 packets
    let mut packets = Vec::new();
    for (i, code) in [8u8, 10, 9].into_iter().enumerate() {
        packets.extend(tx.press(ts0.wrapping_add(i as u32 * 1600), code, 100));
    }
    // A long press straddling the timestamp wrap.
    packets.extend(tx.press(ts0.wrapping_add(4800), 4, 600));
    let (seen, _) = decode(DecoderConfig::default(), &timed(packets, ts0));
    assert_eq!(keys(&seen), "8*94");
    assert_eq!(
        seen.iter().map(|s| s.start).collect::<Vec<_>>(),
        vec![0, 1600, 3200, 4800]
    );
    assert_eq!(seen[3].ms, 600.0);
}

/// RFC 4733 §2.5.1.3: a 10 s press sent as segments of at most 0xFFFF ticks.
#[test]
fn a_long_event_sent_in_segments_is_one_press() {
    let mut tx = Sender::new(1, 100);
    let total: u32 = 80_000;
    let mut packets = Vec::new();
    let mut segment_start = 0u32;
    let mut elapsed = 0u32;
    while elapsed < total {
        elapsed = (elapsed + PTIME).min(total);
        let mut in_segment = elapsed - segment_start;
        if in_segment > 0xFFFF {
            // Close this segment at the maximum and start the next.
            packets.push((elapsed, tx.event(segment_start, 1, false, 0xFFFF)));
            segment_start += 0xFFFF;
            in_segment = elapsed - segment_start;
        }
        let end = elapsed == total;
        let copies = if end { 3 } else { 1 };
        for _ in 0..copies {
            packets.push((elapsed, tx.event(segment_start, 1, end, in_segment as u16)));
        }
    }
    let (seen, _) = decode(DecoderConfig::default(), &timed(packets, 0));
    assert_eq!(keys(&seen), "1");
    assert_eq!(seen[0].ms, 10_000.0);
}

#[test]
fn a_duration_field_that_wraps_is_unwrapped() {
    let mut tx = Sender::new(1, 100);
    let total: u32 = 80_000;
    let mut packets = Vec::new();
    let mut elapsed = 0u32;
    while elapsed < total {
        elapsed += PTIME;
        let end = elapsed == total;
        packets.push((elapsed, tx.event(0, 1, end, elapsed as u16)));
    }
    // A late copy from before the wrap must not look like a second wrap.
    packets.insert(packets.len() - 3, (total, tx.event(0, 1, false, 65_000)));
    let (seen, _) = decode(DecoderConfig::default(), &timed(packets, 0));
    assert_eq!(keys(&seen), "1");
    assert_eq!(seen[0].ms, 10_000.0);
}

#[test]
fn zero_duration_packets_are_ignored() {
    let mut tx = Sender::new(1, 100);
    let mut packets = vec![(0, tx.event(0, 3, false, 0))];
    packets.extend(tx.press(0, 3, 100));
    packets.push((1600, tx.event(1600, 9, false, 0)));
    packets.push((1600, tx.event(1600, 9, true, 0)));
    let (seen, events) = decode(DecoderConfig::default(), &timed(packets, 0));
    assert_eq!(keys(&seen), "3");
    assert_eq!(seen[0].ms, 100.0);
    let started = events
        .iter()
        .filter(|e| matches!(e, DecoderEvent::PressStarted { .. }))
        .count();
    assert_eq!(started, 1);
}

#[test]
fn event_codes_above_15_are_never_digits() {
    let mut tx = Sender::new(1, 100);
    let mut packets = tx.press(0, 1, 100);
    packets.extend(tx.press(1600, 16, 100)); // flash
    packets.extend(tx.press(3200, 32, 100)); // modem/fax tone range
    packets.extend(tx.press(4800, 2, 100));
    let (seen, events) = decode(DecoderConfig::default(), &timed(packets, 0));
    assert_eq!(keys(&seen), "12");
    let others: Vec<u8> = events
        .iter()
        .filter_map(|e| match e {
            DecoderEvent::NonKeyEvent { code, duration, .. } => {
                assert_eq!(duration.as_millis().0, 100.0);
                Some(*code)
            }
            _ => None,
        })
        .collect();
    assert_eq!(others, vec![16, 32]);
}

/// RFC 2198 with two redundant generations: every packet repeats the previous two event
/// payloads. Drop primaries, including a press's first packet and all of another's end
/// packets: the redundant copies must fill in, and must not double anything.
#[test]
fn red_payloads_are_unwrapped_and_deduplicated() {
    let mut tx = Sender::new(1, 100);
    let mut blocks: Vec<(u32, [u8; 4])> = Vec::new(); // (ts, event block) as sent
    let mut arrivals: Vec<u32> = Vec::new();
    for (ts, code) in [(0u32, 2u8), (1600, 7)] {
        let mut d = PTIME;
        while d <= 800 {
            let end = d == 800;
            for _ in 0..if end { 3 } else { 1 } {
                let e = EventPayload {
                    code,
                    end,
                    volume: 10,
                    duration: d as u16,
                };
                blocks.push((ts, e.to_bytes()));
                arrivals.push(ts + d);
            }
            d += PTIME;
        }
    }
    let mut packets = Vec::new();
    for i in 0..blocks.len() {
        let (ts, primary) = blocks[i];
        let redundant: Vec<(u8, u16, &[u8])> = blocks[i.saturating_sub(2)..i]
            .iter()
            .map(|(rts, b)| (101u8, (ts - rts) as u16, &b[..]))
            .collect();
        let payload = wrap_red(&redundant, 101, &primary);
        let p = tx.packet(99, false, ts, &payload);
        packets.push((u64::from(arrivals[i]) / 8, p));
    }
    // Lose the first packet of key 2 and the first two end packets of key 2 (so only the third
    // end packet, and redundancy, say it ended), and the first of key 7.
    let lost = [0usize, 5, 6, 8];
    let packets: Vec<_> = packets
        .into_iter()
        .enumerate()
        .filter(|(i, _)| !lost.contains(i))
        .map(|(_, p)| p)
        .collect();
    let config = DecoderConfig {
        red_payload_types: vec![99],
        ..DecoderConfig::default()
    };
    let (seen, events) = decode(config, &packets);
    assert_eq!(keys(&seen), "27");
    assert!(seen
        .iter()
        .all(|s| s.ms == 100.0 && s.ending == Ending::EndPacket));
    assert_eq!(seen[0].start, 0, "start recovered from redundancy");
    let started = events
        .iter()
        .filter(|e| matches!(e, DecoderEvent::PressStarted { .. }))
        .count();
    assert_eq!(started, 2);
    // Without the red payload type configured, nothing is decoded.
    let (seen, _) = decode(DecoderConfig::default(), &packets);
    assert!(seen.is_empty());
}

#[test]
fn an_ssrc_change_mid_stream_starts_a_fresh_timeline() {
    let mut a = Sender::new(0xAAAA_0001, 100);
    let mut packets = timed(a.press(1000, 1, 100), 1000);
    packets.extend(timed(a.press(2600, 2, 100), 1000));
    // The sender restarts with a new SSRC, sequence and timestamp base, 400 ms later.
    let mut b = Sender::new(0xBBBB_0002, 40_000);
    let base = 0x9000_0000u32;
    for (t, p) in b
        .press(base, 3, 100)
        .into_iter()
        .chain(b.press(base + 1600, 4, 100))
    {
        packets.push((400 + u64::from(t - base) / 8, p));
    }
    let (seen, events) = decode(DecoderConfig::default(), &packets);
    assert_eq!(keys(&seen), "1234");
    assert_eq!(
        seen.iter().map(|s| s.start).collect::<Vec<_>>(),
        vec![0, 1600, 0, 1600]
    );
    let ssrcs: Vec<u32> = events
        .iter()
        .filter_map(|e| match e {
            DecoderEvent::Press { ssrc, .. } => Some(*ssrc),
            _ => None,
        })
        .collect();
    assert_eq!(
        ssrcs,
        vec![0xAAAA_0001, 0xAAAA_0001, 0xBBBB_0002, 0xBBBB_0002]
    );
}

#[test]
fn the_same_key_twice_is_two_presses_even_when_end_packets_are_lost() {
    let mut tx = Sender::new(1, 100);
    let mut packets = tx.press(0, 5, 100);
    packets.extend(tx.press(1600, 5, 100));
    let mut lossy = tx.press(3200, 5, 100);
    lossy.retain(|(_, p)| p[13] & 0x80 == 0);
    packets.extend(lossy);
    // 40 ms pause only (Q.24's minimum) after a press with lost ends.
    packets.extend(tx.press(3200 + 800 + 320, 5, 100));
    let (seen, _) = decode(DecoderConfig::default(), &timed(packets, 0));
    assert_eq!(keys(&seen), "5555");
    assert_eq!(
        seen.iter().map(|s| s.start).collect::<Vec<_>>(),
        vec![0, 1600, 3200, 4320]
    );
}

#[test]
fn a_sender_that_moves_the_timestamp_on_every_packet_gives_one_press_per_key() {
    for cumulative in [true, false] {
        let mut tx = Sender::new(1, 100);
        let mut packets = Vec::new();
        for (start, code) in [(0u32, 4u8), (1600, 2)] {
            for k in 0..5u32 {
                let ts = start + k * PTIME;
                let end = k == 4;
                let d = if cumulative { (k + 1) * PTIME } else { PTIME };
                packets.push((ts + PTIME, tx.event(ts, code, end, d as u16)));
            }
        }
        let (seen, _) = decode(DecoderConfig::default(), &timed(packets, 0));
        assert_eq!(keys(&seen), "42", "cumulative durations: {cumulative}");
        assert!(
            seen.iter().all(|s| s.ms == 100.0),
            "cumulative durations: {cumulative}: {seen:?}"
        );
    }
}

#[test]
fn the_event_payload_type_is_configurable_and_read_from_sdp() {
    let mut tx = Sender::new(1, 100);
    tx.pt = 96;
    let packets = timed(tx.press(0, 9, 100), 0);
    let (seen, _) = decode(DecoderConfig::default(), &packets);
    assert!(seen.is_empty(), "PT 96 is audio unless configured");

    let config = DecoderConfig {
        event_payload_types: vec![96],
        ..DecoderConfig::default()
    };
    assert_eq!(keys(&decode(config, &packets).0), "9");

    let sdp =
        "m=audio 5004 RTP/AVP 0 96\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:96 telephone-event/8000\r\n";
    let found = SdpPayloadTypes::from_sdp(sdp);
    let config = DecoderConfig {
        event_payload_types: found.telephone_event.iter().map(|&(pt, _)| pt).collect(),
        ..DecoderConfig::default()
    };
    assert_eq!(keys(&decode(config, &packets).0), "9");
}

#[test]
fn malformed_packets_are_refused_and_change_nothing() {
    let mut tx = Sender::new(1, 100);
    let mut decoder = Rfc4733Decoder::new(DecoderConfig::default());
    let now = Instant::now();
    let short = tx.packet(101, false, 0, &[5, 0x0a]);
    assert!(matches!(
        decoder.handle_packet(now, &short),
        Err(Rfc4733Error::ShortPayload { len: 2 })
    ));
    assert!(matches!(
        decoder.handle_packet(now, &[0x40, 0, 0]),
        Err(Rfc4733Error::Rtp(_))
    ));
    assert_eq!(decoder.stats().packets, 0);
    assert!(decoder.origin(1).is_none(), "no state for a refused packet");
    let message = Rfc4733Error::ShortPayload { len: 2 }.to_string();
    assert!(message.contains("4"), "says what was expected: {message}");
}

#[test]
fn decoder_events_do_not_show_keys_in_debug_output() {
    let render = |code: u8| {
        let mut tx = Sender::new(1, 100);
        let (_, events) = decode(DecoderConfig::default(), &timed(tx.press(0, code, 100), 0));
        let payload = EventPayload {
            code,
            end: true,
            volume: 10,
            duration: 800,
        };
        format!("{events:?} {payload:?}")
    };
    let reference = render(0);
    for code in 1..16 {
        assert_eq!(render(code), reference);
    }
}
