//! Anchored calls (the ng protocol: tonegate in both directions): the caller's media is relayed
//! only once the other leg's address is known, to wherever it moves; telephone-event payload
//! types learnt from the answer are heard and masked; RTCP on the RTP port is told apart from
//! media, never heard, and forwarded as it came.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tonegate_call::{Call, CallConfig, CallInput, CallOutput, MediaMode};
use tonegate_testkit::phone::{Keying, Phone, Sent};

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

fn anchored(t0: Instant) -> Call {
    Call::new(
        CallConfig {
            mode: MediaMode::Anchored,
            ..CallConfig::default()
        },
        t0,
    )
}

/// Sends the phone's datagrams so far and returns what the call forwarded, and to where.
fn send(call: &mut Call, phone: &mut Phone, t0: Instant) -> Vec<(SocketAddr, Vec<u8>)> {
    let mut out = Vec::new();
    for Sent { at, bytes } in phone.sent.drain(..) {
        let _ = call.handle_input(t0 + at, CallInput::Rtp(&bytes));
        out.extend(forwarded(call));
    }
    out
}

fn forwarded(call: &mut Call) -> Vec<(SocketAddr, Vec<u8>)> {
    let mut out = Vec::new();
    while let Some(output) = call.poll_output() {
        if let CallOutput::Forward(to, bytes) = output {
            out.push((to, bytes));
        }
    }
    out
}

fn heard(call: &mut Call) -> usize {
    let mut n = 0;
    while let Some(output) = call.poll_output() {
        n += usize::from(matches!(output, CallOutput::KeyHeard(_)));
    }
    n
}

/// An RTCP receiver report (PT 201) from `ssrc`, with one report block.
fn receiver_report(ssrc: u32) -> Vec<u8> {
    let mut rr = vec![0x81, 201, 0, 7];
    rr.extend_from_slice(&ssrc.to_be_bytes());
    rr.extend_from_slice(&[0x11; 24]);
    rr
}

#[test]
fn nothing_is_forwarded_until_the_other_leg_is_known_then_it_follows_the_leg() {
    let t0 = Instant::now();
    let mut call = anchored(t0);
    let mut phone = Phone::new(0x1234, 100, 8000);
    phone.silence(100);
    assert!(send(&mut call, &mut phone, t0).is_empty(), "no address yet");
    call.handle_input(t0, CallInput::RelayTo(addr(40000)))
        .unwrap();
    phone.silence(100);
    let out = send(&mut call, &mut phone, t0);
    assert_eq!(out.len(), 5);
    assert!(out.iter().all(|(to, _)| *to == addr(40000)));
    // The other leg is latched elsewhere (NAT): the media follows.
    call.handle_input(t0, CallInput::RelayTo(addr(40002)))
        .unwrap();
    phone.silence(40);
    let out = send(&mut call, &mut phone, t0);
    assert!(!out.is_empty() && out.iter().all(|(to, _)| *to == addr(40002)));
    // Packets sent before the leg was known were not "dropped": the sequence the leg sees
    // is the caller's own.
    let seq = |p: &[u8]| u16::from_be_bytes([p[2], p[3]]);
    assert_eq!(seq(&out[0].1), 110);
}

#[test]
fn a_fork_ignores_a_relay_address() {
    let t0 = Instant::now();
    let mut call = Call::new(CallConfig::default(), t0);
    call.handle_input(t0, CallInput::RelayTo(addr(40000)))
        .unwrap();
    let mut phone = Phone::new(1, 1, 0);
    phone.silence(100);
    assert!(send(&mut call, &mut phone, t0).is_empty());
}

#[test]
fn an_anchored_call_masks_like_a_relay() {
    let t0 = Instant::now();
    let mut call = anchored(t0);
    call.handle_input(t0, CallInput::RelayTo(addr(40000)))
        .unwrap();
    call.handle_input(t0, CallInput::BlockDtmf(true)).unwrap();
    let mut phone = Phone::new(7, 1, 0);
    phone.keys("42", 100, 100, Keying::Rfc4733);
    let out = send(&mut call, &mut phone, t0);
    assert!(!out.is_empty(), "audio goes out");
    assert!(
        out.iter().all(|(_, p)| p[1] & 0x7f != 101),
        "no telephone-event goes out while DTMF is blocked"
    );
}

#[test]
fn telephone_events_on_a_payload_type_learnt_from_the_answer_are_heard_and_masked() {
    let t0 = Instant::now();
    let mut call = anchored(t0);
    call.handle_input(t0, CallInput::RelayTo(addr(40000)))
        .unwrap();
    let mut phone = Phone::new(9, 1, 0);
    phone.event_pt = 96;
    phone.keys("5", 100, 100, Keying::Rfc4733);
    let _ = send(&mut call, &mut phone, t0);
    assert_eq!(heard(&mut call), 0, "PT 96 is not known yet");
    call.handle_input(
        t0,
        CallInput::PayloadTypes {
            event: vec![96],
            red: vec![],
        },
    )
    .unwrap();
    call.handle_input(t0, CallInput::BlockDtmf(true)).unwrap();
    phone.keys("5", 100, 100, Keying::Rfc4733);
    let start = phone.sent.first().unwrap().at;
    let mut forwarded_events = 0;
    let mut keys = 0;
    for Sent { at, bytes } in phone.sent.drain(..) {
        call.handle_input(t0 + at, CallInput::Rtp(&bytes)).unwrap();
        while let Some(output) = call.poll_output() {
            match output {
                CallOutput::Forward(_, p) if p[1] & 0x7f == 96 => forwarded_events += 1,
                CallOutput::KeyHeard(_) => keys += 1,
                _ => {}
            }
        }
    }
    call.handle_input(t0 + start + Duration::from_secs(1), CallInput::Timeout)
        .unwrap();
    keys += heard(&mut call);
    assert_eq!(keys, 1, "the key on PT 96 is heard");
    assert_eq!(forwarded_events, 0, "and masked");
}

#[test]
fn rtcp_is_not_media_and_goes_out_as_it_came_even_while_masking() {
    let t0 = Instant::now();
    for mode in [MediaMode::Relay(addr(40000)), MediaMode::Anchored] {
        let mut call = Call::new(
            CallConfig {
                mode,
                ..CallConfig::default()
            },
            t0,
        );
        call.handle_input(t0, CallInput::RelayTo(addr(40000)))
            .unwrap();
        call.handle_input(t0, CallInput::BlockDtmf(true)).unwrap();
        let mut phone = Phone::new(0x55, 1, 0);
        // A key as events: its packets are dropped, so forwarded RTP is renumbered.
        phone.keys("1", 100, 100, Keying::Rfc4733);
        let rtp = phone.sent.len() as u64;
        let _ = send(&mut call, &mut phone, t0);
        let rr = receiver_report(0x55);
        call.handle_input(t0 + Duration::from_millis(300), CallInput::Rtp(&rr))
            .unwrap();
        let out = forwarded(&mut call);
        assert_eq!(out, [(addr(40000), rr.clone())], "{mode:?}: as it came");
        let counters = call.counters();
        assert_eq!(counters.rtcp, 1);
        assert_eq!(
            counters.packets, rtp,
            "{mode:?}: RTCP is not counted as RTP"
        );
        assert_eq!(counters.refused, 0);
    }
}

#[test]
fn rtcp_keeps_a_call_from_the_no_media_hang_up() {
    let t0 = Instant::now();
    let mut call = anchored(t0);
    let rr = receiver_report(1);
    // RTCP every 5 s for a minute, no RTP (the caller on hold): the call stays up.
    for i in 1..=12 {
        let now = t0 + Duration::from_secs(5 * i);
        if call.poll_timeout().is_some_and(|due| due <= now) {
            call.handle_input(now, CallInput::Timeout).unwrap();
        }
        call.handle_input(now, CallInput::Rtp(&rr)).unwrap();
    }
    assert!(!call.is_ended());
    let due = call.poll_timeout().unwrap();
    assert_eq!(due, t0 + Duration::from_secs(60 + 30));
    call.handle_input(due, CallInput::Timeout).unwrap();
    assert!(call.is_ended());
}

#[test]
fn the_other_leg_s_media_and_a_new_timeout_keep_the_call_up() {
    let t0 = Instant::now();
    let mut call = Call::new(
        CallConfig {
            mode: MediaMode::Anchored,
            no_media_timeout: Duration::from_secs(3600),
            ..CallConfig::default()
        },
        t0,
    );
    // Ringing for ten minutes: no media, the call waits.
    let answered = t0 + Duration::from_secs(600);
    assert!(call.poll_timeout().unwrap() > answered);
    // Answered: from now, the media timeout.
    call.handle_input(answered, CallInput::NoMediaTimeout(Duration::from_secs(30)))
        .unwrap();
    assert_eq!(
        call.poll_timeout(),
        Some(answered + Duration::from_secs(30))
    );
    // The agent talks while the caller is silent (on hold): the call is alive.
    let talking = answered + Duration::from_secs(25);
    call.handle_input(talking, CallInput::Activity).unwrap();
    assert_eq!(call.poll_timeout(), Some(talking + Duration::from_secs(30)));
    let due = call.poll_timeout().unwrap();
    call.handle_input(due, CallInput::Timeout).unwrap();
    assert!(call.is_ended(), "then silence on both legs ends it");
}
