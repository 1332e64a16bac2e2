//! When a relay masks: from a session's start to a hold-over after it ends, for the whole call
//! by config, and on demand (`block DTMF`). No packet of a key press heard while masking held
//! reaches the other leg as a telephone-event, in any form (end retransmissions, RFC 2198
//! copies), and the forwarded sequence stays continuous.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use tonegate_call::{Call, CallConfig, CallInput, CallOutput, MaskingConfig, MediaMode};
use tonegate_control::config::{Format, Function};
use tonegate_control::session::{AgentAction, Invocation};
use tonegate_media::red::wrap_red;
use tonegate_media::rfc4733::EventPayload;
use tonegate_media::Key;
use tonegate_pci::YearMonth;
use tonegate_testkit::phone::{Keying, Phone, Sent};

const EVENT_PT: u8 = 101;
const RED_PT: u8 = 99;

fn function() -> Arc<Function> {
    let yaml = "name: collect_payment\npurpose: p\nconnections:\n  start:\n    url: http://127.0.0.1:9/s\n";
    Arc::new(Function::from_str(yaml, Format::Yaml, Path::new("t.yaml")).unwrap())
}

/// A relay call and what it forwarded.
struct Relay {
    call: Call,
    t0: Instant,
    forwarded: Vec<Vec<u8>>,
}

impl Relay {
    fn new(masking: MaskingConfig) -> Relay {
        let to: SocketAddr = "127.0.0.1:40000".parse().unwrap();
        let t0 = Instant::now();
        let config = CallConfig {
            mode: MediaMode::Relay(to),
            red_payload_types: vec![RED_PT],
            masking,
            ..CallConfig::default()
        };
        Relay {
            call: Call::new(config, t0),
            t0,
            forwarded: Vec::new(),
        }
    }

    /// Sends the phone's datagrams so far (at their send times, from `offset`) and takes
    /// them off the phone.
    fn send(&mut self, phone: &mut Phone, offset: Duration) {
        for Sent { at, bytes } in phone.sent.drain(..) {
            let now = self.t0 + offset + at;
            self.call.handle_input(now, CallInput::Rtp(&bytes)).unwrap();
            self.drain();
        }
    }

    fn drain(&mut self) {
        while let Some(output) = self.call.poll_output() {
            if let CallOutput::Forward(_, bytes) = output {
                self.forwarded.push(bytes);
            }
        }
    }

    fn at(&self, ms: u64) -> Instant {
        self.t0 + Duration::from_millis(ms)
    }

    fn start_session(&mut self, now: Instant) {
        self.call
            .handle_input(
                now,
                CallInput::Invoke {
                    function: function(),
                    reference: "ps_mask".into(),
                    invocation: Invocation::default(),
                    today: YearMonth::new(2026, 12).unwrap(),
                },
            )
            .unwrap();
        self.call
            .handle_input(
                now,
                CallInput::StartResult(Ok(json!({"amount": 100, "currency": "USD"}))),
            )
            .unwrap();
        self.call
            .handle_input(now, CallInput::Agent(AgentAction::ConfirmAmount))
            .unwrap();
        self.drain();
    }

    fn cancel_session(&mut self, now: Instant) {
        self.call
            .handle_input(now, CallInput::Agent(AgentAction::Cancel))
            .unwrap();
        self.drain();
    }

    /// The telephone-event and red packets forwarded.
    fn events(&self) -> Vec<&Vec<u8>> {
        self.forwarded
            .iter()
            .filter(|p| matches!(p[1] & 0x7F, EVENT_PT | RED_PT))
            .collect()
    }
}

fn seq(packet: &[u8]) -> u16 {
    u16::from_be_bytes([packet[2], packet[3]])
}

/// The sender's time of the phone's next packet.
fn phone_time(phone: &Phone) -> Duration {
    phone
        .sent
        .last()
        .map_or(Duration::ZERO, |s| s.at + Duration::from_millis(20))
}

#[test]
fn outside_masking_telephone_events_are_forwarded_as_they_came() {
    let mut relay = Relay::new(MaskingConfig::default());
    let mut phone = Phone::new(7, 100, 8000);
    phone.keys("12", 100, 100, Keying::Rfc4733);
    let sent = phone.sent.clone();
    relay.send(&mut phone, Duration::ZERO);
    assert_eq!(relay.forwarded.len(), sent.len());
    assert!(relay
        .forwarded
        .iter()
        .zip(&sent)
        .all(|(f, s)| *f == s.bytes));
}

#[test]
fn a_key_in_progress_when_the_session_starts_is_not_forwarded_from_then_on() {
    let mut relay = Relay::new(MaskingConfig::default());
    let mut phone = Phone::new(7, 100, 8000);
    phone.silence(100);
    relay.send(&mut phone, Duration::ZERO);
    // Key 4 held for 200 ms; the agent starts the session 60 ms into it.
    phone.press(Key::from_char('4').unwrap(), 200, Keying::Rfc4733);
    let press: Vec<Sent> = phone.sent.drain(..).collect();
    let (before, after): (Vec<Sent>, Vec<Sent>) = press
        .into_iter()
        .partition(|s| s.at < Duration::from_millis(160));
    phone.sent = before;
    relay.send(&mut phone, Duration::ZERO);
    let forwarded_before = relay.events().len();
    assert!(forwarded_before > 0, "the key's first packets went out");
    relay.start_session(relay.at(160));
    phone.sent = after;
    relay.send(&mut phone, Duration::ZERO);
    assert_eq!(
        relay.events().len(),
        forwarded_before,
        "no packet of the key after the session started"
    );
}

#[test]
fn a_key_that_outlasts_the_session_and_its_hold_over_never_goes_out() {
    let masking = MaskingConfig {
        hold_over: Duration::from_millis(100),
        ..MaskingConfig::default()
    };
    let mut relay = Relay::new(masking);
    let mut phone = Phone::new(7, 100, 8000);
    phone.silence(100);
    relay.send(&mut phone, Duration::ZERO);
    relay.start_session(relay.at(100));
    // A long key (800 ms) keyed during the session; the session is cancelled 100 ms in, so
    // the hold-over ends while the key is still down, and its end packets come after that.
    phone.press(Key::from_char('9').unwrap(), 800, Keying::Rfc4733);
    let press: Vec<Sent> = phone.sent.drain(..).collect();
    let (during, rest): (Vec<Sent>, Vec<Sent>) = press
        .into_iter()
        .partition(|s| s.at < Duration::from_millis(200));
    phone.sent = during;
    relay.send(&mut phone, Duration::ZERO);
    relay.cancel_session(relay.at(200));
    phone.sent = rest;
    relay.send(&mut phone, Duration::ZERO);
    assert!(
        relay.events().is_empty(),
        "{} event packets of the masked key went out",
        relay.events().len()
    );
    // A later key, well after the hold-over, goes out again.
    phone.silence(100);
    phone.press(Key::from_char('1').unwrap(), 100, Keying::Rfc4733);
    relay.send(&mut phone, Duration::ZERO);
    assert!(
        !relay.events().is_empty(),
        "keys after the hold-over go out"
    );
}

#[test]
fn the_end_packets_of_the_last_key_after_the_session_ends_stay_masked() {
    let mut relay = Relay::new(MaskingConfig::default());
    let mut phone = Phone::new(7, 100, 8000);
    phone.silence(100);
    relay.send(&mut phone, Duration::ZERO);
    relay.start_session(relay.at(100));
    phone.press(Key::from_char('#').unwrap(), 100, Keying::Both);
    let press: Vec<Sent> = phone.sent.drain(..).collect();
    // The session ends (cancelled) between the key's updates and its three end packets.
    let (updates, ends): (Vec<Sent>, Vec<Sent>) = press
        .into_iter()
        .partition(|s| s.at < Duration::from_millis(180));
    phone.sent = updates;
    relay.send(&mut phone, Duration::ZERO);
    relay.cancel_session(relay.at(180));
    phone.sent = ends;
    relay.send(&mut phone, Duration::ZERO);
    assert!(relay.events().is_empty());
    // Within the hold-over, audio is still scrubbed: a key's tone goes out as silence.
    let before = relay.call.counters().scrubbed;
    phone.press(Key::from_char('5').unwrap(), 100, Keying::Inband);
    relay.send(&mut phone, Duration::ZERO);
    assert!(
        relay.call.counters().scrubbed > before,
        "tones scrubbed in the hold-over"
    );
}

#[test]
fn a_red_copy_of_a_masked_key_after_the_hold_over_is_not_forwarded() {
    let masking = MaskingConfig {
        hold_over: Duration::from_millis(100),
        ..MaskingConfig::default()
    };
    let mut relay = Relay::new(masking);
    let mut phone = Phone::new(7, 100, 8000);
    relay.start_session(relay.at(0));
    let key = |code, end, duration| EventPayload {
        code,
        end,
        volume: 10,
        duration,
    };
    // Key 3 at timestamp 8000, sent in red during the session.
    let masked = key(3, true, 800).to_bytes();
    let p = phone.packet(RED_PT, true, 8000, &wrap_red(&[], EVENT_PT, &masked));
    relay
        .call
        .handle_input(relay.at(20), CallInput::Rtp(&p))
        .unwrap();
    relay.cancel_session(relay.at(40));
    // 400 ms later, past the hold-over: a new key 7 at 11200 whose red packet repeats key 3
    // (offset 3200 ticks) goes nowhere; a red packet with key 7 alone goes out.
    let fresh = key(7, false, 160).to_bytes();
    let with_copy = wrap_red(&[(EVENT_PT, 3200, &masked)], EVENT_PT, &fresh);
    let p = phone.packet(RED_PT, true, 11_200, &with_copy);
    relay
        .call
        .handle_input(relay.at(440), CallInput::Rtp(&p))
        .unwrap();
    relay.drain();
    assert!(relay.events().is_empty(), "the red copy of key 3 went out");
    let alone = wrap_red(&[], EVENT_PT, &key(7, true, 320).to_bytes());
    let p = phone.packet(RED_PT, false, 11_200, &alone);
    relay
        .call
        .handle_input(relay.at(460), CallInput::Rtp(&p))
        .unwrap();
    relay.drain();
    assert_eq!(relay.events().len(), 1, "key 7 alone goes out");
}

#[test]
fn whole_call_masking_and_block_dtmf_mask_without_a_session() {
    let mut relay = Relay::new(MaskingConfig {
        whole_call: true,
        ..MaskingConfig::default()
    });
    let mut phone = Phone::new(7, 100, 8000);
    phone.keys("12", 100, 100, Keying::Both);
    relay.send(&mut phone, Duration::ZERO);
    assert!(relay.events().is_empty());
    assert!(relay.call.counters().scrubbed > 0);

    let mut relay = Relay::new(MaskingConfig::default());
    let mut phone = Phone::new(8, 100, 8000);
    relay
        .call
        .handle_input(relay.at(0), CallInput::BlockDtmf(true))
        .unwrap();
    phone.keys("3", 100, 100, Keying::Rfc4733);
    relay.send(&mut phone, Duration::ZERO);
    assert!(relay.events().is_empty(), "blocked: no events");
    let offset = phone_time(&phone);
    relay
        .call
        .handle_input(
            relay.at(offset.as_millis() as u64),
            CallInput::BlockDtmf(false),
        )
        .unwrap();
    phone.keys("4", 100, 100, Keying::Rfc4733);
    relay.send(&mut phone, Duration::ZERO);
    assert_eq!(relay.events().len(), 8, "unblocked: key 4's eight packets");
}

#[test]
fn forwarded_sequence_numbers_stay_continuous_over_dropped_packets() {
    let mut relay = Relay::new(MaskingConfig {
        whole_call: true,
        ..MaskingConfig::default()
    });
    let mut phone = Phone::new(7, 65_530, 8000); // wraps
    phone.keys("1234", 100, 60, Keying::Rfc4733);
    let sent = phone.sent.len();
    relay.send(&mut phone, Duration::ZERO);
    assert!(relay.forwarded.len() < sent, "events were dropped");
    for pair in relay.forwarded.windows(2) {
        assert_eq!(seq(&pair[1]), seq(&pair[0]).wrapping_add(1));
    }
    assert_eq!(seq(&relay.forwarded[0]), 65_530);
}

#[test]
fn the_replacement_is_a_setting_and_no_replacement_is_heard_as_a_key() {
    use tonegate_call::Replacement;
    use tonegate_media::listener::{Listener, ListenerConfig, ListenerEvent};
    for replacement in [Replacement::Silence, Replacement::Noise, Replacement::Tone] {
        let mut relay = Relay::new(MaskingConfig {
            whole_call: true,
            replacement,
            ..MaskingConfig::default()
        });
        let mut phone = Phone::new(7, 100, 8000);
        phone.silence(100);
        phone.keys("159", 100, 100, Keying::Inband);
        relay.send(&mut phone, Duration::ZERO);
        // PCMU silence is 0xFF; a tone replacement puts something else where the keys were.
        let audible = relay
            .forwarded
            .iter()
            .any(|p| p[1] & 0x7F == 0 && p[12..].iter().any(|&b| b != 0xFF && b != 0x7F));
        assert_eq!(audible, replacement == Replacement::Tone, "{replacement:?}");
        let mut listener = Listener::new(ListenerConfig::default());
        for (i, p) in relay.forwarded.iter().enumerate() {
            let _ = listener.handle_packet(relay.at(20 * i as u64), p);
        }
        listener.finish();
        let mut presses = 0;
        while let Some(event) = listener.poll_event() {
            presses += usize::from(matches!(event, ListenerEvent::Press { .. }));
        }
        assert_eq!(
            presses, 0,
            "{replacement:?}: a key was heard in the masked audio"
        );
    }
}
