//! The RFC 4733 decoder seen from outside, one test per pitfall real senders fall into.
//! Each builds the packets a misbehaving (or correct) sender puts on the wire.

use std::time::{Duration, Instant};

use tonegate_media::red::wrap_red;
use tonegate_media::rfc4733::{
    DecoderConfig, DecoderEvent, Ending, EventPayload, Rfc4733Decoder, Rfc4733Error,
};
use tonegate_media::sdp::SdpPayloadTypes;
use tonegate_testkit::rtp;

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
        let bytes = rtp::packet(pt, marker, self.seq, ts, self.ssrc, payload);
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

/// How many `PressStarted` events there are.
fn count_started(events: &[DecoderEvent]) -> usize {
    events
        .iter()
        .filter(|e| matches!(e, DecoderEvent::PressStarted { .. }))
        .count()
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
    let started = count_started(&events);
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
    let started = count_started(&events);
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

/// Keys 2 then 7 (100 ms each, end packet three times) sent as RFC 2198 red (PT 99) with two
/// redundant generations: every packet repeats the previous two event payloads. The packets
/// whose indices are in `lost` are dropped; returns the rest with arrival times in ms.
fn red_call(lost: &[usize]) -> Vec<(u64, Vec<u8>)> {
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
        if lost.contains(&i) {
            continue;
        }
        let (ts, primary) = blocks[i];
        let redundant: Vec<(u8, u16, &[u8])> = blocks[i.saturating_sub(2)..i]
            .iter()
            .map(|(rts, b)| (101u8, (ts - rts) as u16, &b[..]))
            .collect();
        let payload = wrap_red(&redundant, 101, &primary);
        packets.push((
            u64::from(arrivals[i]) / 8,
            tx.packet(99, false, ts, &payload),
        ));
    }
    packets
}

/// RFC 2198 with two redundant generations: every packet repeats the previous two event
/// payloads. Drop primaries, including a press's first packet and all of another's end
/// packets: the redundant copies must fill in, and must not double anything.
#[test]
fn red_payloads_are_unwrapped_and_deduplicated() {
    // Lose the first packet of key 2 and the first two end packets of key 2 (so only the third
    // end packet, and redundancy, say it ended), and the first of key 7.
    let packets = red_call(&[0, 5, 6, 8]);
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
    let started = count_started(&events);
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

/// M03: one end packet, not three (two copies lost): the end bit of a press's *first* packet
/// must end it. (`an_event_made_only_of_end_packets_is_a_press` sends three copies, so the
/// second copy ends the press even when the first packet's end bit is ignored.)
#[test]
fn an_event_of_a_single_end_packet_ends_on_that_packet() {
    let mut tx = Sender::new(1, 100);
    let mut packets = Vec::new();
    for (i, code) in [3u8, 6, 9].into_iter().enumerate() {
        let ts = i as u32 * 1600;
        packets.push((ts + 800, tx.event(ts, code, true, 800)));
    }
    let (seen, _) = decode(DecoderConfig::default(), &timed(packets, 0));
    assert_eq!(keys(&seen), "369");
    assert!(
        seen.iter()
            .all(|s| s.ms == 100.0 && s.ending == Ending::EndPacket),
        "{seen:?}"
    );
}

/// M12: an update reordered behind a newer one must not shrink the press (matters when the
/// end packets are lost and the press's length is the largest duration seen).
#[test]
fn a_reordered_older_update_does_not_shorten_an_open_press() {
    let mut tx = Sender::new(1, 100);
    let mut packets = tx.press(0, 1, 100);
    packets.retain(|(_, p)| p[13] & 0x80 == 0); // updates 160, 320, 480, 640; ends lost
    let (_, late) = packets.remove(2); // the 480 update ...
    packets.push((640, late)); // ... arrives after the 640 one
    packets.extend(tx.press(1600, 2, 100));
    let (seen, _) = decode(DecoderConfig::default(), &timed(packets, 0));
    assert_eq!(keys(&seen), "12");
    assert_eq!(seen[0].ending, Ending::NextEvent);
    assert_eq!(
        seen[0].ms, 80.0,
        "largest duration seen, not the last to arrive"
    );
}

/// M13: a straggler from an earlier press that was otherwise lost entirely (so not remembered)
/// arrives while the next press is held: it must not cut that press or report it twice.
#[test]
fn a_straggler_from_an_unseen_earlier_press_does_not_cut_the_open_press() {
    let mut tx = Sender::new(1, 100);
    let mut straggler = tx.press(0, 1, 100);
    let (_, last) = straggler.pop().unwrap(); // key 1's last end packet, delayed
    let mut packets = tx.press(1600, 2, 100);
    packets.insert(2, (1600 + 2 * PTIME, last)); // arrives mid key 2
    let (seen, events) = decode(DecoderConfig::default(), &timed(packets, 0));
    assert_eq!(keys(&seen), "2");
    assert_eq!(seen[0].ms, 100.0);
    assert_eq!(seen[0].ending, Ending::EndPacket);
    let started = count_started(&events);
    assert_eq!(started, 1);
}

/// M43: the same, for a straggler of the *same* key: its timestamp lies before the open
/// press, so it must not be taken as a continuation of it (the mutated decoder underflows
/// `ts - start` and panics).
#[test]
fn a_straggler_of_the_same_key_from_before_the_open_press_is_dropped() {
    let mut tx = Sender::new(1, 100);
    let mut straggler = tx.press(0, 5, 100);
    let (_, last) = straggler.pop().unwrap();
    let mut packets = tx.press(1600, 5, 100);
    packets.insert(2, (1600 + 2 * PTIME, last));
    let (seen, _) = decode(DecoderConfig::default(), &timed(packets, 0));
    assert_eq!(keys(&seen), "5");
    assert_eq!(
        seen[0].start, 0,
        "the open press's start (the stream's origin), not the straggler's"
    );
    assert_eq!(seen[0].ms, 100.0);
}

/// A 20 s press in RFC 4733 §2.5.1.3 segments (new segment timestamp = previous + `step`),
/// with every packet from 100 ms before to 40 ms after each segment boundary lost, so the
/// new segment starts well past the media time the press has covered.
fn segmented_press_with_losses_at_the_boundaries(step: u32) -> Vec<(u32, Vec<u8>)> {
    let mut tx = Sender::new(1, 100);
    let total: u32 = 160_000;
    let lost = |elapsed: u32| {
        (1..=2).any(|n| {
            let b = n * step;
            elapsed > b - 800 && elapsed <= b + 320
        })
    };
    let mut packets = Vec::new();
    let mut segment_start = 0u32;
    let mut elapsed = 0u32;
    while elapsed < total {
        elapsed = (elapsed + PTIME).min(total);
        let mut in_segment = elapsed - segment_start;
        if in_segment > 0xFFFF {
            let close = tx.event(segment_start, 1, false, 0xFFFF);
            if !lost(elapsed) {
                packets.push((elapsed, close));
            }
            segment_start += step;
            in_segment = elapsed - segment_start;
        }
        let end = elapsed == total;
        for _ in 0..if end { 3 } else { 1 } {
            let p = tx.event(segment_start, 1, end, in_segment as u16);
            if !lost(elapsed) {
                packets.push((elapsed, p));
            }
        }
    }
    packets
}

/// M17, M44: a new segment is recognised by its timestamp step even when the packets around
/// the boundary are lost (the existing test sends every packet, so the new segment's timestamp
/// is always inside the covered media time and `is_next_segment` is never needed).
#[test]
fn a_long_event_stays_one_press_when_packets_around_segment_boundaries_are_lost() {
    let packets = segmented_press_with_losses_at_the_boundaries(0xFFFF);
    let (seen, _) = decode(DecoderConfig::default(), &timed(packets, 0));
    assert_eq!(keys(&seen), "1", "{seen:?}");
    assert_eq!(seen[0].ms, 20_000.0);
    assert_eq!(seen[0].ending, Ending::EndPacket);
}

/// M18: the same for senders that step segments by 0x10000.
#[test]
fn a_long_event_with_0x10000_segment_steps_stays_one_press_despite_losses() {
    let packets = segmented_press_with_losses_at_the_boundaries(0x1_0000);
    let (seen, _) = decode(DecoderConfig::default(), &timed(packets, 0));
    assert_eq!(keys(&seen), "1", "{seen:?}");
    assert_eq!(seen[0].ms, 20_000.0);
}

/// M26: a red payload may carry other payload types (audio) beside telephone-events; those
/// blocks must not be parsed as events.
#[test]
fn red_blocks_of_other_payload_types_are_not_events() {
    let mut tx = Sender::new(1, 100);
    let audio = [0xFFu8; 160];
    let mut packets = Vec::new();
    for (ts, code) in [(0u32, 4u8), (1600, 7)] {
        let mut d = PTIME;
        while d <= 800 {
            let end = d == 800;
            for _ in 0..if end { 3 } else { 1 } {
                let e = EventPayload {
                    code,
                    end,
                    volume: 10,
                    duration: d as u16,
                }
                .to_bytes();
                // Redundant PCMU block (PT 0), primary telephone-event.
                let payload = wrap_red(&[(0, 160, &audio[..])], 101, &e);
                packets.push((ts + d, tx.packet(99, false, ts, &payload)));
            }
            d += PTIME;
        }
    }
    let config = DecoderConfig {
        red_payload_types: vec![99],
        ..DecoderConfig::default()
    };
    let (seen, events) = decode(config, &timed(packets, 0));
    assert_eq!(keys(&seen), "47");
    assert!(seen
        .iter()
        .all(|s| s.ms == 100.0 && s.ending == Ending::EndPacket));
    assert!(
        !events
            .iter()
            .any(|e| matches!(e, DecoderEvent::NonKeyEvent { .. })),
        "audio bytes decoded as an event: {events:?}"
    );
}

/// A sender that moves the timestamp on every packet (per-packet durations) and keeps moving
/// it on its retransmitted end packets.
fn moving_ts_press(
    tx: &mut Sender,
    start: u32,
    code: u8,
    lose: Option<u32>,
) -> Vec<(u32, Vec<u8>)> {
    let mut out = Vec::new();
    for k in 0..7u32 {
        let ts = start + k * PTIME;
        let p = tx.event(ts, code, k >= 4, PTIME as u16);
        if Some(k) != lose {
            out.push((ts + PTIME, p));
        }
    }
    out
}

/// M32 (and M35): the later end-packet copies of such a sender lie just past the press's
/// media time; the continuation gap must cover them in the late-copy check too.
#[test]
fn end_copies_of_a_sender_that_moves_the_timestamp_are_not_new_presses() {
    let mut tx = Sender::new(1, 100);
    let mut packets = moving_ts_press(&mut tx, 0, 4, None);
    packets.extend(moving_ts_press(&mut tx, 1600, 2, None));
    let (seen, _) = decode(DecoderConfig::default(), &timed(packets, 0));
    assert_eq!(keys(&seen), "42", "{seen:?}");
    assert!(seen.iter().all(|s| s.ms == 100.0), "{seen:?}");
}

/// M35: continuation_gap is what lets a timestamp-moving sender lose a packet without the
/// press being split in two.
#[test]
fn a_sender_that_moves_the_timestamp_may_lose_one_packet_per_press() {
    for cumulative in [true, false] {
        let mut tx = Sender::new(1, 100);
        let mut packets = Vec::new();
        for (start, code) in [(0u32, 4u8), (1600, 2)] {
            for k in 0..5u32 {
                let ts = start + k * PTIME;
                let d = if cumulative { (k + 1) * PTIME } else { PTIME };
                let p = tx.event(ts, code, k == 4, d as u16);
                if k != 2 {
                    packets.push((ts + PTIME, p));
                }
            }
        }
        let (seen, _) = decode(DecoderConfig::default(), &timed(packets, 0));
        assert_eq!(
            keys(&seen),
            "42",
            "cumulative durations: {cumulative}: {seen:?}"
        );
        assert!(
            seen.iter().all(|s| s.ms == 100.0),
            "cumulative durations: {cumulative}: {seen:?}"
        );
    }
}

/// M33: a duplicate end packet delayed past the next whole press is still a late copy.
#[test]
fn a_duplicate_delayed_past_the_next_press_is_still_a_late_copy() {
    let mut tx = Sender::new(1, 100);
    let mut packets = tx.press(0, 1, 100);
    let (_, dup) = packets.last().cloned().unwrap();
    packets.extend(tx.press(1600, 2, 100));
    packets.push((2400 + 160, dup)); // key 1's end packet again, 200 ms late
    let (seen, _) = decode(DecoderConfig::default(), &timed(packets, 0));
    assert_eq!(keys(&seen), "12");
}

/// M39: a press still held when the input ends is reported by `finish`.
#[test]
fn a_press_still_open_at_end_of_input_is_reported_by_finish() {
    let mut tx = Sender::new(1, 100);
    let mut packets = tx.press(0, 9, 100);
    packets.retain(|(_, p)| p[13] & 0x80 == 0);
    let (seen, _) = decode(DecoderConfig::default(), &timed(packets, 0));
    assert_eq!(
        seen,
        vec![Seen {
            key: '9',
            start: 0,
            ms: 80.0,
            ending: Ending::EndOfInput
        }]
    );
}

/// M40: audio interleaved on the same SSRC during a press (as baresip sends) must not end a
/// press that lasts longer than end_timeout: media time is measured from the end it reached.
#[test]
fn audio_during_a_long_press_does_not_end_it() {
    let mut tx = Sender::new(1, 100);
    let mut packets = vec![(0, tx.audio(0))];
    for (ts, p) in tx.press(0, 1, 1000) {
        packets.push((ts, tx.audio(ts)));
        packets.push((ts, p));
    }
    let (seen, _) = decode(DecoderConfig::default(), &timed(packets, 0));
    assert_eq!(keys(&seen), "1");
    assert_eq!(seen[0].ms, 1000.0);
    assert_eq!(seen[0].ending, Ending::EndPacket);
}

/// M38: payload types learnt from SDP after the decoder started are used.
#[test]
fn payload_types_added_after_start_are_decoded() {
    let mut tx = Sender::new(1, 100);
    tx.pt = 96;
    let origin = Instant::now();
    let mut decoder = Rfc4733Decoder::new(DecoderConfig::default());
    decoder.add_payload_types(&[96], &[98]);
    for (ts, p) in tx.press(0, 9, 100) {
        decoder
            .handle_packet(origin + Duration::from_millis(u64::from(ts) / 8), &p)
            .unwrap();
    }
    let mut pressed = Vec::new();
    while let Some(e) = decoder.poll_event() {
        if let DecoderEvent::Press { press, .. } = e {
            pressed.push(press.key().as_char());
        }
    }
    assert_eq!(pressed, vec!['9']);
    assert_eq!(decoder.config().event_payload_types, vec![101, 96]);
    assert_eq!(decoder.config().red_payload_types, vec![98]);
}

/// M16: the decoder discards extended sequence numbers, so their wrap is only visible through
/// the extender itself (extend.rs unit tests cover this; they are not in these two suites).
#[test]
fn sequence_numbers_extend_across_the_16_bit_wrap() {
    use tonegate_media::extend::SeqExtender;
    let mut seq = SeqExtender::new();
    let a = seq.extend(65535);
    let b = seq.extend(0);
    assert_eq!(b.wrapping_sub(a), 1);
    assert_eq!(
        seq.extend(65535),
        a,
        "a late packet from before the wrap stays before it"
    );
}

/// M24, M27 (caught today only by the red.pcap fixture): every end packet of the first press
/// is lost as a primary, so only the redundant copies carried by the next press's packets can
/// end it; they are older than that packet's primary and must be handled first.
#[test]
fn red_redundancy_alone_can_end_a_press() {
    // Packets 4..=6 carry key 2's three end packets as primaries: lose all three.
    let packets = red_call(&[4, 5, 6]);
    let config = DecoderConfig {
        red_payload_types: vec![99],
        ..DecoderConfig::default()
    };
    let (seen, _) = decode(config, &packets);
    assert_eq!(keys(&seen), "27");
    assert_eq!(seen[0].ms, 100.0, "end recovered from redundancy: {seen:?}");
    assert_eq!(seen[0].ending, Ending::EndPacket, "{seen:?}");
}

/// A red payload whose redundant telephone-event block is empty (length 0, as senders emit
/// before they have history) makes the whole packet be refused: the valid primary end packet
/// is lost with it.
#[test]
fn an_empty_redundant_block_does_not_lose_the_primary() {
    let mut tx = Sender::new(1, 100);
    let e = EventPayload {
        code: 4,
        end: true,
        volume: 10,
        duration: 800,
    }
    .to_bytes();
    let payload = wrap_red(&[(101, 160, &[][..])], 101, &e);
    let config = DecoderConfig {
        red_payload_types: vec![99],
        ..DecoderConfig::default()
    };
    let mut d = Rfc4733Decoder::new(config);
    let r = d.handle_packet(Instant::now(), &tx.packet(99, false, 0, &payload));
    assert!(r.is_ok(), "refused: {r:?}");
}

/// A straggler from an otherwise-lost earlier press is dropped if a later press is open, but
/// reported as a new press -- after the later one, i.e. digits out of order -- if none is.
#[test]
fn a_straggler_of_an_unseen_earlier_press_is_never_reported_out_of_order() {
    let mut tx = Sender::new(1, 100);
    let mut first = tx.press(0, 1, 100);
    let (_, straggler) = first.pop().unwrap(); // key 1: only its last end packet survives
    let mut packets = tx.press(1600, 2, 100);
    packets.push((2560, straggler)); // arrives 20 ms after key 2 ended
    let origin = Instant::now();
    let mut d = Rfc4733Decoder::new(DecoderConfig::default());
    for (ts, p) in &packets {
        d.handle_packet(origin + Duration::from_millis(u64::from(*ts) / 8), p)
            .unwrap();
    }
    d.finish();
    let keys: String = std::iter::from_fn(|| d.poll_event())
        .filter_map(|e| match e {
            DecoderEvent::Press { press, .. } => Some(press.key().as_char()),
            _ => None,
        })
        .collect();
    assert_eq!(keys, "2");
}
