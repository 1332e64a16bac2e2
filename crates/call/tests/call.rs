//! A whole call, sans-IO: RTP with RFC 4733 key presses in, the agent's events, the payment
//! and the connections out, and the relay policy, without a socket.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use serde_json::json;
use tonegate_call::{Call, CallConfig, CallError, CallInput, CallOutput, MediaMode};
use tonegate_control::config::{Format, Function};
use tonegate_control::session::{AgentAction, AgentEvent, ConnectionKind, Invocation, State};
use tonegate_pci::Sandbox;
use tonegate_pci::{pay, YearMonth};
use tonegate_testkit::phone::press_event;

fn function() -> Arc<Function> {
    let yaml = "name: collect_payment\npurpose: p\nconnections:\n  start:\n    url: http://127.0.0.1:9/s\n  success:\n    url: http://127.0.0.1:9/ok\n  failure:\n    url: http://127.0.0.1:9/ko\nlimits:\n  first_key_timeout_seconds: 3\n  per_field_retry_limit: 0\n";
    Arc::new(Function::from_str(yaml, Format::Yaml, Path::new("t.yaml")).unwrap())
}

/// A caller's phone: PCMU every 20 ms, RFC 4733 presses on PT 101, fed to the call at `t`.
struct Phone {
    rtp: tonegate_testkit::phone::Phone,
    t: Instant,
}

impl Phone {
    /// A phone with sequence numbers from `seq` and timestamps from `ts`, SSRC 0x1234.
    fn new(seq: u16, ts: u32, t: Instant) -> Phone {
        Phone {
            rtp: tonegate_testkit::phone::Phone::new(0x1234, seq, ts),
            t,
        }
    }

    fn packet(&mut self, pt: u8, ts: u32, payload: &[u8]) -> Vec<u8> {
        self.rtp.packet(pt, false, ts, payload)
    }

    /// `n` audio packets, 20 ms apart.
    fn audio(&mut self, call: &mut Call, n: u32) {
        for _ in 0..n {
            let p = self.packet(0, self.rtp.ts, &[0xFF; 160]);
            call.handle_input(self.t, CallInput::Rtp(&p)).unwrap();
            self.rtp.ts = self.rtp.ts.wrapping_add(160);
            self.t += Duration::from_millis(20);
        }
    }

    /// Presses `keys`: 100 ms each (5 updates, 3 ends), 100 ms of audio between.
    fn press(&mut self, call: &mut Call, keys: &str) {
        for c in keys.chars() {
            let code = tonegate_media::Key::from_char(c).unwrap().event_code();
            let start = self.rtp.ts;
            for i in 1..=8u16 {
                let p = self.packet(101, start, &press_event(code, i).to_bytes());
                call.handle_input(self.t, CallInput::Rtp(&p)).unwrap();
                if i <= 5 {
                    self.t += Duration::from_millis(20);
                    self.rtp.ts = self.rtp.ts.wrapping_add(160);
                }
            }
            self.audio(call, 5);
        }
    }
}

/// Invokes the test function on `call` at `now`.
fn invoke(call: &mut Call, now: Instant, reference: &str) -> Result<(), CallError> {
    call.handle_input(
        now,
        CallInput::Invoke {
            function: function(),
            reference: reference.into(),
            invocation: Invocation::default(),
            today: YearMonth::new(2026, 11).unwrap(),
        },
    )
}

fn drain(call: &mut Call, out: &mut Vec<CallOutput>) {
    while let Some(o) = call.poll_output() {
        out.push(o);
    }
}

fn says(out: &[CallOutput]) -> Vec<String> {
    out.iter()
        .filter_map(|o| match o {
            CallOutput::Agent {
                event: AgentEvent::Say { message, .. },
                ..
            } => Some(json!(message).as_str().unwrap().to_owned()),
            _ => None,
        })
        .collect()
}

#[test]
fn a_call_collects_and_pays_a_card_from_rtp_key_presses() {
    let t0 = Instant::now();
    let mut call = Call::new(CallConfig::default(), t0);
    let mut phone = Phone::new(1, 9000, t0);
    let mut out = Vec::new();
    phone.audio(&mut call, 10);
    phone.press(&mut call, "123"); // before any session: heard, routed nowhere
    invoke(&mut call, phone.t, "ps_call").unwrap();
    drain(&mut call, &mut out);
    assert!(out
        .iter()
        .any(|o| matches!(o, CallOutput::StartConnection { .. })));
    call.handle_input(
        phone.t,
        CallInput::StartResult(Ok(json!({"amount": 4200, "currency": "USD"}))),
    )
    .unwrap();
    call.handle_input(phone.t, CallInput::Agent(AgentAction::ConfirmAmount))
        .unwrap();
    phone.press(&mut call, "4242424242424242#1230123");
    drain(&mut call, &mut out);
    assert_eq!(
        call.session().unwrap().1,
        State::AwaitingCardConfirmation,
        "{:?}",
        says(&out)
    );
    call.handle_input(phone.t, CallInput::Agent(AgentAction::ConfirmCard))
        .unwrap();
    drain(&mut call, &mut out);
    let (card, request) = out
        .iter_mut()
        .find_map(|o| match std::mem::replace(o, CallOutput::HungUp) {
            CallOutput::Pay { card, request, .. } => Some((card, request)),
            other => {
                *o = other;
                None
            }
        })
        .expect("a payment to make");
    let outcome = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap()
        .block_on(pay(&Sandbox::default(), card, &request, SystemTime::now()));
    call.handle_input(phone.t, CallInput::Payment(outcome))
        .unwrap();
    drain(&mut call, &mut out);
    assert_eq!(call.session().unwrap().1, State::Succeeded);
    let success = out.iter().find_map(|o| match o {
        CallOutput::Connection {
            kind: ConnectionKind::Success,
            body,
            ..
        } => Some(body.clone()),
        _ => None,
    });
    assert_eq!(success.unwrap()["card"]["last4"], "4242");
    assert_eq!(
        says(&out),
        [
            "disclaimer",
            "before_starting_session",
            "credit_card",
            "expiration_date",
            "security_code",
            "confirmation_message",
            "payment_success"
        ]
    );
}

#[test]
fn relay_mode_drops_telephone_events_only_while_a_session_is_active() {
    let t0 = Instant::now();
    let to: SocketAddr = "127.0.0.1:40000".parse().unwrap();
    let config = CallConfig {
        mode: MediaMode::Relay(to),
        ..CallConfig::default()
    };
    let mut call = Call::new(config, t0);
    let mut phone = Phone::new(1, 0, t0);
    let mut out = Vec::new();
    let forwarded_pts = |out: &mut Vec<CallOutput>| -> Vec<u8> {
        let pts = out
            .iter()
            .filter_map(|o| match o {
                CallOutput::Forward(dest, p) => {
                    assert_eq!(*dest, to);
                    Some(p[1] & 0x7F)
                }
                _ => None,
            })
            .collect();
        out.clear();
        pts
    };
    phone.press(&mut call, "1");
    drain(&mut call, &mut out);
    let before = forwarded_pts(&mut out);
    assert!(before.contains(&101), "no session: events are forwarded");
    invoke(&mut call, phone.t, "ps_relay").unwrap();
    phone.press(&mut call, "2");
    drain(&mut call, &mut out);
    let during = forwarded_pts(&mut out);
    assert!(
        !during.contains(&101),
        "session active: events are not forwarded"
    );
    assert!(during.contains(&0), "audio still is");
    // Audio the scrubber cannot read (G.722, payload type 9) is not forwarded during a
    // session: it could carry the key tones.
    let g722 = phone.packet(9, phone.rtp.ts, &[0x55; 160]);
    call.handle_input(phone.t, CallInput::Rtp(&g722)).unwrap();
    drain(&mut call, &mut out);
    assert_eq!(forwarded_pts(&mut out), Vec::<u8>::new());
}

#[test]
fn relay_mode_forwards_any_payload_type_outside_a_session() {
    let t0 = Instant::now();
    let to: SocketAddr = "127.0.0.1:40000".parse().unwrap();
    let mut call = Call::new(
        CallConfig {
            mode: MediaMode::Relay(to),
            ..CallConfig::default()
        },
        t0,
    );
    let mut phone = Phone::new(1, 0, t0);
    let g722 = phone.packet(9, 0, &[0x55; 160]);
    call.handle_input(t0, CallInput::Rtp(&g722)).unwrap();
    let mut out = Vec::new();
    drain(&mut call, &mut out);
    assert!(
        matches!(out.as_slice(), [CallOutput::Forward(dest, p)] if *dest == to && p == &g722),
        "{out:?}"
    );
}

#[test]
fn garbage_is_refused_and_silence_ends_the_call_as_a_hang_up() {
    let t0 = Instant::now();
    let config = CallConfig {
        no_media_timeout: Duration::from_secs(5),
        ..CallConfig::default()
    };
    let mut call = Call::new(config, t0);
    assert!(call.handle_input(t0, CallInput::Rtp(b"garbage")).is_err());
    assert!(call
        .handle_input(t0, CallInput::Rtp(&[0x80, 0, 0]))
        .is_err());
    assert_eq!((call.counters().packets, call.counters().refused), (0, 2));
    invoke(&mut call, t0, "ps_silent").unwrap();
    call.handle_input(
        t0,
        CallInput::StartResult(Ok(json!({"amount": 100, "currency": "USD"}))),
    )
    .unwrap();
    call.handle_input(t0, CallInput::Agent(AgentAction::ConfirmAmount))
        .unwrap();
    let mut out = Vec::new();
    // No media at all: the first-key timeout (3 s) runs on the wall clock.
    let due = call.poll_timeout().unwrap();
    assert!(
        due <= t0 + Duration::from_secs(3) + Duration::from_millis(5),
        "{:?}",
        due - t0
    );
    call.handle_input(due, CallInput::Timeout).unwrap();
    drain(&mut call, &mut out);
    assert!(out.iter().any(|o| matches!(
        o,
        CallOutput::Agent {
            event: AgentEvent::FieldRejected { .. },
            ..
        }
    )));
    // With no retries left, the session has failed; the call itself ends after 5 s of silence.
    assert_eq!(call.session().unwrap().1, State::Failed);
    call.handle_input(t0 + Duration::from_secs(5), CallInput::Timeout)
        .unwrap();
    drain(&mut call, &mut out);
    assert!(out.iter().any(|o| matches!(o, CallOutput::HungUp)));
    assert!(call.is_ended());
}

#[test]
fn a_hang_up_mid_card_fails_the_session_as_caller_hung_up() {
    let t0 = Instant::now();
    let mut call = Call::new(CallConfig::default(), t0);
    let mut phone = Phone::new(1, 0, t0);
    invoke(&mut call, phone.t, "ps_hang").unwrap();
    call.handle_input(
        phone.t,
        CallInput::StartResult(Ok(json!({"amount": 100, "currency": "USD"}))),
    )
    .unwrap();
    call.handle_input(t0, CallInput::Agent(AgentAction::ConfirmAmount))
        .unwrap();
    phone.press(&mut call, "4242");
    call.handle_input(phone.t, CallInput::HangUp).unwrap();
    let mut out = Vec::new();
    drain(&mut call, &mut out);
    let failure = out.iter().find_map(|o| match o {
        CallOutput::Connection {
            kind: ConnectionKind::Failure,
            body,
            ..
        } => Some(body.clone()),
        _ => None,
    });
    assert_eq!(failure.unwrap()["failed_reason"], "caller-hung-up");
    assert!(invoke(&mut call, phone.t, "ps_again").is_err());
}
