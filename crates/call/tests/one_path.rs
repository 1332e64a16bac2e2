//! One listening path: the same datagrams, replayed as a capture and received by a live call,
//! give the same presses (start, duration, source, ending), the same packet and loss counts.
//! Both run `tonegate_media::listener::Listener`; this test keeps it so.

use std::net::SocketAddrV4;
use std::time::{Duration, Instant};

use tonegate_call::{Call, CallConfig, CallInput, CallOutput, HeardPress};
use tonegate_media::capture::Frame;
use tonegate_media::replay::{Replay, ReplayConfig, ReplayPress, StreamSummary};
use tonegate_media::rfc4733::Ending;
use tonegate_media::udp::LinkType;
use tonegate_media::Source;
use tonegate_testkit::capture::{timestamp, udp_frame};
use tonegate_testkit::phone::{Keying, Phone, Sent};

/// A press as both paths can report it: start and duration in ms on the stream's timeline
/// from its first packet, source and ending.
#[derive(Clone, Debug, PartialEq)]
struct Heard {
    start_ms: f64,
    duration_ms: f64,
    source: Source,
    ending: Ending,
}

/// A call's worth of keying, then what a network did to it: two audio packets lost, one pair
/// reordered, one packet duplicated, and the end packets of one event lost (its end found by
/// the decoder's timeout or the next press).
fn datagrams() -> Vec<Sent> {
    let mut phone = Phone::new(0x5eed, 65_500, 4_294_960_000); // both wrap during the call
    phone.silence(200);
    phone.keys("12", 80, 100, Keying::Inband);
    phone.keys("34", 100, 100, Keying::Rfc4733);
    phone.keys("56", 100, 100, Keying::Both);
    phone.keys("7", 60, 100, Keying::Inband);
    phone.silence(400);
    let mut sent = phone.sent;
    sent.remove(5);
    sent.remove(40);
    sent.swap(60, 61);
    let copy = sent[70].clone();
    sent.insert(72, copy);
    sent
}

/// The datagrams as a capture (raw IPv4 + UDP frames at their send times), replayed.
fn replayed(sent: &[Sent]) -> (Vec<ReplayPress>, StreamSummary) {
    let caller: SocketAddrV4 = "10.0.0.1:40000".parse().unwrap();
    let gateway: SocketAddrV4 = "10.0.0.2:50000".parse().unwrap();
    let mut replay = Replay::new(ReplayConfig::default(), Instant::now());
    for (i, s) in sent.iter().enumerate() {
        let data = udp_frame(caller, gateway, &s.bytes);
        replay.handle_frame(&Frame {
            number: i as u64 + 1,
            timestamp: timestamp(s.at),
            link: LinkType::RawIp,
            data: &data,
        });
    }
    let (mut streams, _) = replay.finish();
    assert_eq!(streams.len(), 1, "one stream");
    (replay.drain_presses().collect(), streams.remove(0))
}

fn replay(sent: &[Sent]) -> (Vec<Heard>, u64, u64) {
    let (presses, stream) = replayed(sent);
    let heard = presses
        .iter()
        .map(|p| Heard {
            start_ms: p.start.0 - stream.first_seen.0,
            duration_ms: p.press.duration().as_millis().0,
            source: p.press.source(),
            ending: p.ending,
        })
        .collect();
    (heard, stream.packets, stream.lost)
}

fn live(sent: &[Sent]) -> (Vec<Heard>, u64, u64) {
    let t0 = Instant::now();
    let mut call = Call::new(CallConfig::default(), t0);
    let mut heard = Vec::new();
    let mut take = |call: &mut Call| {
        while let Some(output) = call.poll_output() {
            if let CallOutput::KeyHeard(HeardPress {
                start,
                duration,
                source,
                ending,
                ..
            }) = output
            {
                heard.push(Heard {
                    start_ms: start
                        .millis_from(tonegate_media::MediaTime::new(0, start.rate()))
                        .0,
                    duration_ms: duration.as_millis().0,
                    source,
                    ending,
                });
            }
        }
    };
    for s in sent {
        let now = t0 + s.at;
        while let Some(due) = call.poll_timeout().filter(|&due| due <= now) {
            call.handle_input(due, CallInput::Timeout).unwrap();
        }
        call.handle_input(now, CallInput::Rtp(&s.bytes)).unwrap();
        take(&mut call);
    }
    let end = t0 + sent.last().unwrap().at + Duration::from_millis(20);
    call.handle_input(end, CallInput::HangUp).unwrap();
    take(&mut call);
    let counters = call.counters();
    (heard, counters.packets, counters.lost)
}

#[test]
fn a_replay_and_a_live_call_hear_the_same_presses_and_the_same_loss() {
    let sent = datagrams();
    let (replayed, replay_packets, replay_lost) = replay(&sent);
    let (heard, live_packets, live_lost) = live(&sent);
    assert_eq!(replayed, heard);
    assert_eq!((replay_packets, replay_lost), (live_packets, live_lost));
    // What both heard is what was keyed: seven presses, each once, from the right source.
    let sources: Vec<Source> = heard.iter().map(|h| h.source).collect();
    use Source::{Inband, Rfc4733};
    assert_eq!(
        sources,
        [Inband, Inband, Rfc4733, Rfc4733, Rfc4733, Rfc4733, Inband],
        "{heard:#?}"
    );
    assert_eq!(live_lost, 2 - 1, "two lost, one duplicated");
    assert_eq!(live_packets, sent.len() as u64);
}

#[test]
fn the_phone_keys_what_the_test_asks_for() {
    // The keys themselves, checked once here so that the comparison above is not of two
    // empty lists: a replay of the same datagrams reads "1234567".
    let (presses, _) = replayed(&datagrams());
    let keys: String = presses.iter().map(|p| p.press.key().as_char()).collect();
    assert_eq!(keys, "1234567");
}
