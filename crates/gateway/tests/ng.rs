//! tonegate driven over rtpengine's ng protocol, as Kamailio drives a media proxy, on
//! 127.0.0.1: an offer and an answer with real SDP, RTP both ways between two UDP sockets
//! playing the caller and the callee (the agent's side), a payment session started through
//! the agent API by SIP Call-ID, key presses as RFC 4733 events and as tones, a hijacker on
//! another port, retransmissions, malformed requests, and the delete; RTCP on the port above
//! RTP (no rtcp-mux) relayed both ways and latched, and the RTP and RTCP port pairs taken.

mod common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::presses_heard;
use serde_json::json;
use tokio::net::UdpSocket;
use tonegate::serve::{Gateway, Running, ServeConfig};
use tonegate_testkit::agent::{wait_for, Agent};
use tonegate_testkit::caller::Caller;
use tonegate_testkit::ng::{Bencode, NgClient};
use tonegate_testkit::rtp;
use tonegate_testkit::standin::{customer_endpoints, demo_function};

const LIMIT: Duration = Duration::from_secs(20);
const PACE: Duration = Duration::from_millis(2);
/// A SIP Call-ID as phones write them, with the characters a URL path must escape.
const SIP_CALL_ID: &str = "a84b4c76e66710@pc33.example.com/leg?1";
const FROM_TAG: &str = "1928301774";
const TO_TAG: &str = "a6c85cf";
const CALLEE_SSRC: u32 = 0xCA11_EE00;
const HIJACKER_SSRC: u32 = 0xBAD0_0BAD;

struct World {
    running: Running,
    agent: Agent,
    ng: NgClient,
    dir: std::path::PathBuf,
}

async fn world(name: &str) -> World {
    world_with(name, |c| c).await
}

async fn world_with(name: &str, tweak: impl FnOnce(ServeConfig) -> ServeConfig) -> World {
    let start = json!({"amount": 4200, "currency": "USD",
        "processor_parameters": {"is_postal_code_required": true}});
    let (customer, _received) = customer_endpoints(start, 200).await.unwrap();
    let dir = std::env::temp_dir().join(format!("tonegate-ng-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let config = ServeConfig {
        shutdown_deadline_seconds: 0.5,
        ng_listen: Some(SocketAddr::from(([127, 0, 0, 1], 0))),
        ..ServeConfig::local(&dir, &demo_function(customer), "tel", "agt").unwrap()
    };
    let running = Gateway::start(tweak(config), None).await.unwrap();
    let agent = Agent::new(running.addr, "tel", "agt");
    let ng = NgClient::new(running.ng_addr.expect("ng is on"))
        .await
        .unwrap();
    World {
        running,
        agent,
        ng,
        dir,
    }
}

impl World {
    async fn metric(&self, name: &str) -> u64 {
        let text = reqwest::get(format!("http://{}/metrics", self.running.addr))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
            .map_or(0, |v| v.trim().parse().unwrap())
    }

    async fn stop(self) {
        self.running.stop().await;
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// An SDP as a phone on 127.0.0.1 sends it, receiving at `at`, with an ICE candidate and a
/// separate RTCP port (the one above) that tonegate reads and takes out.
fn sdp(at: SocketAddr) -> String {
    format!(
        "v=0\r\no=- 3912 3912 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
         m=audio {} RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n\
         a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na=rtcp:{}\r\n\
         a=candidate:1 1 UDP 2130706431 127.0.0.1 {} typ host\r\na=sendrecv\r\na=ptime:20\r\n",
        at.port(),
        at.port() + 1,
        at.port()
    )
}

/// An offer or answer as Kamailio's rtpengine module builds it for
/// `rtpengine_offer("replace-origin replace-session-connection ICE=remove RTP/AVP
/// trust-address rtcp-mux-demux")`, with `extra_flags` in its flags list.
fn kamailio(command: &str, sdp: &str, to_tag: Option<&str>, extra_flags: &[&str]) -> Bencode {
    let mut flags = vec!["trust-address"];
    flags.extend_from_slice(extra_flags);
    let mut entries = vec![
        ("sdp", Bencode::text(sdp)),
        ("supports", Bencode::texts(&["load limit"])),
        ("ICE", Bencode::text("remove")),
        ("flags", Bencode::texts(&flags)),
        ("replace", Bencode::texts(&["origin", "session-connection"])),
        ("transport-protocol", Bencode::text("RTP/AVP")),
        ("rtcp-mux", Bencode::texts(&["demux"])),
        ("received-from", Bencode::texts(&["IP4", "127.0.0.1"])),
        ("call-id", Bencode::text(SIP_CALL_ID)),
        ("via-branch", Bencode::text("z9hG4bK776asdhds")),
        ("from-tag", Bencode::text(FROM_TAG)),
    ];
    if let Some(tag) = to_tag {
        entries.push(("to-tag", Bencode::text(tag)));
    }
    entries.push(("command", Bencode::text(command)));
    let message_type = if command == "answer" {
        "sip_reply"
    } else {
        "sip_request"
    };
    entries.push(("sip-message-type", Bencode::text(message_type)));
    Bencode::dict(&entries)
}

fn command(name: &str, extra: &[(&str, Bencode)]) -> Bencode {
    let mut entries = vec![
        ("command", Bencode::text(name)),
        ("call-id", Bencode::text(SIP_CALL_ID)),
        ("from-tag", Bencode::text(FROM_TAG)),
    ];
    entries.extend(extra.iter().cloned());
    Bencode::dict(&entries)
}

/// The port of the audio stream an SDP points at.
fn audio_port(sdp: &str) -> u16 {
    sdp.lines()
        .find_map(|l| l.strip_prefix("m=audio "))
        .and_then(|m| m.split_whitespace().next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no m=audio in {sdp}"))
}

fn ok(answer: &Bencode) -> &Bencode {
    assert_eq!(answer.text_of("result"), Some("ok"), "{answer:?}");
    answer
}

fn error_reason(answer: &Bencode) -> String {
    assert_eq!(answer.text_of("result"), Some("error"), "{answer:?}");
    answer.text_of("error-reason").unwrap().to_owned()
}

/// Every datagram a socket receives, with when, until the task is aborted.
type Heard = Arc<Mutex<Vec<(Instant, Vec<u8>)>>>;

fn record(socket: Arc<UdpSocket>) -> (Heard, tokio::task::JoinHandle<()>) {
    let heard: Heard = Arc::default();
    let keep = heard.clone();
    let task = tokio::spawn(async move {
        let mut buf = [0u8; 2048];
        while let Ok((n, _)) = socket.recv_from(&mut buf).await {
            keep.lock()
                .unwrap()
                .push((Instant::now(), buf[..n].to_vec()));
        }
    });
    (heard, task)
}

/// One counter of the leg with `tag` in a `query` answer's `tags` (its first stream's stats).
fn leg_stat(tags: &Bencode, tag: &str, name: &str) -> Option<i64> {
    tags.get(tag)
        .and_then(|t| t.get("medias"))
        .and_then(Bencode::as_list)
        .and_then(|m| m.first())
        .and_then(|m| m.get("streams"))
        .and_then(Bencode::as_list)
        .and_then(|s| s.first())
        .and_then(|s| s.get("stats"))
        .and_then(|s| s.get(name))
        .and_then(Bencode::as_int)
}

/// The datagrams heard so far, in order.
fn datagrams(heard: &Heard) -> Vec<Vec<u8>> {
    heard
        .lock()
        .unwrap()
        .iter()
        .map(|(_, p)| p.clone())
        .collect()
}

fn ssrc(p: &[u8]) -> u32 {
    u32::from_be_bytes([p[8], p[9], p[10], p[11]])
}

fn pt(p: &[u8]) -> u8 {
    p[1] & 0x7f
}

/// `n` PCMU packets from the callee (its voice: a pattern, not silence), the datagrams sent.
async fn callee_speaks(
    socket: &UdpSocket,
    to: SocketAddr,
    seq: &mut u16,
    n: usize,
) -> Vec<Vec<u8>> {
    let mut sent = Vec::new();
    for _ in 0..n {
        let ts = u32::from(*seq) * 160;
        let payload: Vec<u8> = (0..160u32).map(|i| (i * 7 + ts) as u8 | 0x40).collect();
        let p = rtp::packet(0, false, *seq, ts, CALLEE_SSRC, &payload);
        *seq = seq.wrapping_add(1);
        socket.send_to(&p, to).await.unwrap();
        sent.push(p);
        tokio::time::sleep(PACE).await;
    }
    sent
}

/// A call set up through ng: the caller's and callee's sockets and tonegate's port for each.
struct Anchored {
    caller: Arc<UdpSocket>,
    callee: Arc<UdpSocket>,
    /// Where the caller sends (from the rewritten answer).
    caller_to: SocketAddr,
    /// Where the callee sends (from the rewritten offer).
    callee_to: SocketAddr,
}

/// The rewritten SDPs of an offer from `offerer` (with `flags`) and the answer from
/// `answerer`, as Kamailio sends them: what the answerer is told, then what the offerer is.
async fn negotiate(
    w: &mut World,
    offerer: &UdpSocket,
    answerer: &UdpSocket,
    flags: &[&str],
) -> (String, String) {
    let offer = kamailio("offer", &sdp(offerer.local_addr().unwrap()), None, flags);
    let offered = w.ng.request(&offer).await.unwrap();
    let answer = kamailio(
        "answer",
        &sdp(answerer.local_addr().unwrap()),
        Some(TO_TAG),
        &[],
    );
    let answered = w.ng.request(&answer).await.unwrap();
    (
        ok(&offered).text_of("sdp").unwrap().to_owned(),
        ok(&answered).text_of("sdp").unwrap().to_owned(),
    )
}

/// Where a side sends its RTP, from the SDP it was given.
fn at_port(sdp: &str) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], audio_port(sdp)))
}

async fn offer_and_answer(w: &mut World) -> Anchored {
    let caller = Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
    let callee = Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
    let (offered_sdp, answered_sdp) = negotiate(w, &caller, &callee, &[]).await;
    Anchored {
        caller,
        callee,
        caller_to: at_port(&answered_sdp),
        callee_to: at_port(&offered_sdp),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_anchored_over_ng_pays_masks_the_caller_and_relays_the_agent_untouched() {
    let mut w = world("pay").await;

    // ping, and what cannot be understood.
    let ping = Bencode::dict(&[("command", Bencode::text("ping"))]);
    let pong = w.ng.request(&ping).await.unwrap();
    assert_eq!(pong.text_of("result"), Some("pong"));
    let garbled = w.ng.exchange(b"bad_1 d7:commande").await.unwrap();
    let garbled = Bencode::decode(garbled.strip_prefix(b"bad_1 ").expect("cookie echoed"));
    let reason = error_reason(&garbled.unwrap());
    assert!(reason.contains("malformed bencode"), "{reason}");
    let (_, dance) =
        w.ng.send(
            "bad_2",
            &Bencode::dict(&[("command", Bencode::text("dance"))]),
        )
        .await
        .unwrap();
    assert!(error_reason(&dance).contains("unknown command `dance`"));
    // A datagram without a cookie cannot be answered: it is dropped, nothing else.
    w.ng.timeout = Duration::from_millis(300);
    assert!(w.ng.exchange(b"d7:command4:pinge").await.is_err());
    w.ng.timeout = Duration::from_secs(5);
    // SRTP is refused with the reason.
    let mut srtp = kamailio(
        "offer",
        &sdp("127.0.0.1:4000".parse().unwrap()).replace("RTP/AVP", "RTP/SAVP"),
        None,
        &[],
    );
    if let Bencode::Dict(entries) = &mut srtp {
        entries.retain(|(k, _)| k != b"transport-protocol");
    }
    let refused = w.ng.request(&srtp).await.unwrap();
    assert!(error_reason(&refused).contains("SRTP"), "{refused:?}");
    assert_eq!(w.metric("tonegate_calls_total").await, 0, "no call leaked");

    // The offer, as Kamailio sends it, with a flag tonegate does not know; then the same
    // request again with the same cookie (the proxy heard nothing in time).
    let caller_socket = Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
    let callee_socket = Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
    let offer = kamailio(
        "offer",
        &sdp(caller_socket.local_addr().unwrap()),
        None,
        &["frobnicate"],
    );
    let (first, offered) = w.ng.send("5323_1", &offer).await.unwrap();
    let offered_sdp = ok(&offered).text_of("sdp").unwrap().to_owned();
    let (again, _) = w.ng.send("5323_1", &offer).await.unwrap();
    assert_eq!(
        again, first,
        "a retransmission gets the kept answer, byte for byte"
    );
    assert_eq!(
        w.metric("tonegate_calls_total").await,
        1,
        "and no second call"
    );
    assert_eq!(w.metric("tonegate_ng_retransmissions_total").await, 1);
    assert!(w.metric("tonegate_ng_unknown_flags_total").await >= 1);
    let callee_to = at_port(&offered_sdp);
    assert_ne!(callee_to, caller_socket.local_addr().unwrap());
    assert!(
        offered_sdp.contains("c=IN IP4 127.0.0.1\r\n"),
        "{offered_sdp}"
    );
    for gone in ["candidate", "a=rtcp:"] {
        assert!(!offered_sdp.contains(gone), "{gone} in {offered_sdp}");
    }
    let answer = kamailio(
        "answer",
        &sdp(callee_socket.local_addr().unwrap()),
        Some(TO_TAG),
        &[],
    );
    let answered = w.ng.request(&answer).await.unwrap();
    let answered_sdp = ok(&answered).text_of("sdp").unwrap().to_owned();
    let caller_to = at_port(&answered_sdp);
    assert_ne!(caller_to, callee_to, "one socket per side");
    let listed =
        w.ng.request(&Bencode::dict(&[("command", Bencode::text("list"))]))
            .await
            .unwrap();
    assert_eq!(
        ok(&listed).get("calls"),
        Some(&Bencode::texts(&[SIP_CALL_ID]))
    );

    // Media both ways: the caller first (its leg latches), then the callee.
    let (caller_heard, caller_reader) = record(caller_socket.clone());
    let (callee_heard, callee_reader) = record(callee_socket.clone());
    let mut caller = Caller::on(caller_socket.clone(), caller_to, PACE);
    caller.audio(5).await.unwrap();
    let mut callee_seq = 1000;
    let mut callee_sent = callee_speaks(&callee_socket, callee_to, &mut callee_seq, 20).await;
    // Before any session, a key reaches the callee: the relay is real.
    caller.press("1").await.unwrap();
    caller.audio(5).await.unwrap();

    // A hijacker who learnt both ports: refused on both, counted, never forwarded.
    let hijacker = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    for i in 0..10u16 {
        let key = rtp::packet(101, i == 0, i, 0, HIJACKER_SSRC, &[9, 0x0a, 0, 160]);
        hijacker.send_to(&key, caller_to).await.unwrap();
        let voice = rtp::packet(0, false, i, u32::from(i) * 160, HIJACKER_SSRC, &[0x55; 160]);
        hijacker.send_to(&voice, callee_to).await.unwrap();
    }

    // The agent side finds the call by its SIP Call-ID and starts a session on it.
    let (status, found) = w.agent.call_by_sip_call_id(SIP_CALL_ID).await.unwrap();
    assert_eq!(status, 200, "{found}");
    assert_eq!(found["sip_call_id"], SIP_CALL_ID);
    let call_id = found["call_id"].as_str().unwrap().to_owned();
    let (status, _) = w.agent.call_by_sip_call_id("nobody@nowhere").await.unwrap();
    assert_eq!(status, 404);
    let session_start = Instant::now();
    let session = w.agent.invoke(&call_id).await.unwrap();
    let mut events = w.agent.events(&session).await.unwrap();
    wait_for(&mut events, "state_changed", false, LIMIT)
        .await
        .unwrap();
    assert_eq!(
        w.agent.act(&session, "confirm_amount").await.unwrap().0,
        200
    );
    // The card number as RFC 4733 events, the expiry and security code as tones, the postal
    // code as events; the callee keeps talking meanwhile.
    caller.press("4242424242424242#").await.unwrap();
    callee_sent.extend(callee_speaks(&callee_socket, callee_to, &mut callee_seq, 20).await);
    caller.press_inband("1230123").await.unwrap();
    caller.press("94107#").await.unwrap();
    let summary = wait_for(&mut events, "masked_summary", false, LIMIT)
        .await
        .unwrap();
    assert_eq!(summary["card"]["last4"], "4242");
    assert_eq!(w.agent.act(&session, "confirm_card").await.unwrap().0, 200);
    let outcome = wait_for(&mut events, "outcome", false, LIMIT)
        .await
        .unwrap();
    assert_eq!(outcome["state"], "succeeded", "{outcome}");
    let session_end = Instant::now();
    caller.audio(5).await.unwrap();

    // query: per-leg counts, key presses counted, never shown.
    let queried = w.ng.request(&command("query", &[])).await.unwrap();
    let tags = ok(&queried).get("tags").unwrap();
    let stats = |tag: &str| {
        tags.get(tag)
            .unwrap()
            .get("medias")
            .unwrap()
            .as_list()
            .unwrap()[0]
            .get("streams")
            .unwrap()
            .as_list()
            .unwrap()[0]
            .get("stats")
            .unwrap()
            .clone()
    };
    let caller_stats = stats(FROM_TAG);
    let callee_stats = stats(TO_TAG);
    assert_eq!(
        caller_stats.get("key presses").and_then(Bencode::as_int),
        Some(31)
    );
    assert_eq!(
        caller_stats.get("foreign").and_then(Bencode::as_int),
        Some(10)
    );
    assert_eq!(
        callee_stats.get("foreign").and_then(Bencode::as_int),
        Some(10)
    );
    assert_eq!(
        callee_stats.get("packets").and_then(Bencode::as_int),
        Some(callee_sent.len() as i64)
    );
    assert_eq!(
        callee_stats.get("key presses"),
        None,
        "the agent's leg is not listened to"
    );
    assert!(
        caller_stats
            .get("packets")
            .and_then(Bencode::as_int)
            .unwrap()
            > 300
    );
    assert_eq!(w.metric("tonegate_rtp_foreign_source_total").await, 20);

    // delete: the call ends.
    let deleted = w.ng.request(&command("delete", &[])).await.unwrap();
    ok(&deleted);
    let gone = w.ng.request(&command("query", &[])).await.unwrap();
    assert!(error_reason(&gone).contains("no call"));
    let listed =
        w.ng.request(&Bencode::dict(&[("command", Bencode::text("list"))]))
            .await
            .unwrap();
    assert_eq!(ok(&listed).get("calls"), Some(&Bencode::List(vec![])));
    let (status, _) = w.agent.call_by_sip_call_id(SIP_CALL_ID).await.unwrap();
    assert_eq!(status, 404);
    let mut active = 1;
    for _ in 0..100 {
        active = w.metric("tonegate_active_calls").await;
        if active == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(active, 0, "the call task ended");
    // The offer's retransmission arriving late, after the delete: the kept answer, and still
    // no second call.
    let (late, _) = w.ng.send("5323_1", &offer).await.unwrap();
    assert_eq!(late, first);
    assert_eq!(w.metric("tonegate_calls_total").await, 1);
    assert_eq!(w.metric("tonegate_active_calls").await, 0);
    tokio::time::sleep(Duration::from_millis(100)).await;
    caller_reader.abort();
    callee_reader.abort();

    // What the callee (the agent's side) received: the caller's audio, its key before the
    // session, and during the session no telephone-event and no key tone.
    let callee_heard = callee_heard.lock().unwrap().clone();
    assert!(
        callee_heard.iter().all(|(_, p)| ssrc(p) != HIJACKER_SSRC),
        "the hijacker's packets reached the callee"
    );
    let from_caller: Vec<&(Instant, Vec<u8>)> = callee_heard
        .iter()
        .filter(|(_, p)| ssrc(p) == caller.ssrc())
        .collect();
    let before: Vec<Vec<u8>> = from_caller
        .iter()
        .filter(|(at, _)| *at < session_start)
        .map(|(_, p)| p.clone())
        .collect();
    assert!(
        before.iter().any(|p| pt(p) == 101),
        "the key before the session went out"
    );
    assert_eq!(presses_heard(&before), 1);
    let during: Vec<Vec<u8>> = from_caller
        .iter()
        .filter(|(at, _)| *at >= session_start && *at <= session_end)
        .map(|(_, p)| p.clone())
        .collect();
    let audio = during.iter().filter(|p| pt(p) == 0).count();
    assert!(
        audio > 150,
        "the caller's audio reached the callee: {audio} packets"
    );
    assert!(
        during.iter().all(|p| pt(p) != 101),
        "a telephone-event reached the callee during the session"
    );
    assert_eq!(
        presses_heard(&during),
        0,
        "a key reached the callee during the session"
    );

    // What the caller received: the callee's voice, every packet as it was sent, and nothing
    // of the hijacker's.
    let caller_heard = caller_heard.lock().unwrap().clone();
    let from_callee: Vec<Vec<u8>> = caller_heard
        .iter()
        .filter(|(_, p)| ssrc(p) == CALLEE_SSRC)
        .map(|(_, p)| p.clone())
        .collect();
    assert_eq!(from_callee, callee_sent, "the callee's audio, untouched");
    assert!(caller_heard.iter().all(|(_, p)| ssrc(p) != HIJACKER_SSRC));
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn block_dtmf_masks_on_demand_and_delete_hangs_up_the_session() {
    let mut w = world("block").await;
    let call = offer_and_answer(&mut w).await;
    let (callee_heard, callee_reader) = record(call.callee.clone());
    let (caller_heard, caller_reader) = record(call.caller.clone());
    let mut caller = Caller::on(call.caller.clone(), call.caller_to, PACE);
    let voice = callee_speaks(&call.callee, call.callee_to, &mut 1, 5).await;
    let events_sent = |heard: &Heard| {
        let n = heard
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, p)| pt(p) == 101)
            .count();
        heard.lock().unwrap().clear();
        n
    };
    caller.press("1").await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(events_sent(&callee_heard) > 0, "unblocked: events go out");
    // The answerer's leg is relayed untouched: blocking its DTMF is refused, and says why.
    let wrong =
        w.ng.request(&command(
            "block DTMF",
            &[("from-tag", Bencode::text(TO_TAG))],
        ))
        .await
        .unwrap();
    assert!(error_reason(&wrong).contains("answerer"), "{wrong:?}");
    ok(&w.ng.request(&command("block DTMF", &[])).await.unwrap());
    caller.press("2").await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(events_sent(&callee_heard), 0, "blocked: no event goes out");
    ok(&w.ng.request(&command("unblock DTMF", &[])).await.unwrap());
    caller.press("3").await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(events_sent(&callee_heard) > 0, "unblocked again");

    // A session mid-card, then the BYE's delete: the session ends as a hang-up.
    let (_, found) = w.agent.call_by_sip_call_id(SIP_CALL_ID).await.unwrap();
    let session = w
        .agent
        .invoke(found["call_id"].as_str().unwrap())
        .await
        .unwrap();
    let mut events = w.agent.events(&session).await.unwrap();
    wait_for(&mut events, "state_changed", false, LIMIT)
        .await
        .unwrap();
    w.agent.act(&session, "confirm_amount").await.unwrap();
    caller.press("424242").await.unwrap();
    wait_for(&mut events, "field_progress", false, LIMIT)
        .await
        .unwrap();
    let deleted = w.ng.request(&command("delete", &[])).await.unwrap();
    ok(&deleted);
    assert!(
        deleted.get("totals").is_some(),
        "the delete answer has the call's totals"
    );
    let outcome = wait_for(&mut events, "outcome", false, LIMIT)
        .await
        .unwrap();
    assert_eq!(outcome["failed_reason"], "caller-hung-up");
    // A second delete (the proxy's retry with a new cookie) finds nothing, and says so
    // without failing; with `fatal` it is an error.
    let again = w.ng.request(&command("delete", &[])).await.unwrap();
    assert!(ok(&again).text_of("warning").unwrap().contains("no call"));
    let fatal =
        w.ng.request(&command("delete", &[("flags", Bencode::texts(&["fatal"]))]))
            .await
            .unwrap();
    assert!(error_reason(&fatal).contains("no call"));
    callee_reader.abort();
    caller_reader.abort();
    let relayed: Vec<Vec<u8>> = datagrams(&caller_heard);
    assert_eq!(
        relayed, voice,
        "the callee's voice reached the caller as it was sent"
    );
    w.stop().await;
}

/// The Call-IDs `list` gives.
async fn listed(w: &mut World) -> Vec<String> {
    let answer =
        w.ng.request(&Bencode::dict(&[("command", Bencode::text("list"))]))
            .await
            .unwrap();
    ok(&answer)
        .get("calls")
        .and_then(Bencode::as_list)
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ringing_call_waits_for_media_and_a_silent_one_ends_without_a_delete() {
    let mut w = world_with("ring", |c| ServeConfig {
        no_media_timeout_seconds: 1,
        ng_offer_timeout_seconds: 4,
        ..c
    })
    .await;
    let t0 = Instant::now();
    // Answered, ringing without early media; and one never answered.
    let call = offer_and_answer(&mut w).await;
    let lonely = Bencode::dict(&[
        (
            "sdp",
            Bencode::text(&sdp("127.0.0.1:4000".parse().unwrap())),
        ),
        ("call-id", Bencode::text("never-answered")),
        ("from-tag", Bencode::text("f")),
        ("command", Bencode::text("offer")),
    ]);
    ok(&w.ng.request(&lonely).await.unwrap());
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let mut both = listed(&mut w).await;
    both.sort();
    assert_eq!(
        both,
        [SIP_CALL_ID, "never-answered"],
        "ringing longer than the media timeout"
    );
    // Media flows, then stops: the media timeout applies, no delete needed.
    let mut caller = Caller::on(call.caller.clone(), call.caller_to, PACE);
    caller.audio(3).await.unwrap();
    let mut ended = false;
    for _ in 0..150 {
        if !listed(&mut w).await.contains(&SIP_CALL_ID.to_owned()) {
            ended = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(ended, "a call silent for the media timeout ends");
    assert!(t0.elapsed() < Duration::from_secs(4));
    assert_eq!(listed(&mut w).await, ["never-answered"]);
    // The offer never answered goes at the offer timeout: no call leaks.
    let mut gone = false;
    for _ in 0..200 {
        if listed(&mut w).await.is_empty() {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(gone, "an offer never answered ends at the offer timeout");
    assert!(t0.elapsed() >= Duration::from_secs(4));
    w.stop().await;
}

/// An outbound call (an agent or dialler calls the customer): the answerer keys the payment.
/// With `caller=answerer` in the offer's flags, the answerer's leg is the one collected and
/// masked, and the offerer's (the agent's) is relayed untouched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outbound_call_collects_and_masks_the_answerer_when_the_offer_says_so() {
    let mut w = world("outbound").await;
    let agent = Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
    let customer = Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
    let (offered_sdp, answered_sdp) =
        negotiate(&mut w, &agent, &customer, &["caller=answerer"]).await;
    let (customer_to, agent_to) = (at_port(&offered_sdp), at_port(&answered_sdp));
    let (agent_heard, agent_reader) = record(agent.clone());
    let (customer_heard, customer_reader) = record(customer.clone());
    // The agent's voice goes to the customer untouched.
    let voice = callee_speaks(&agent, agent_to, &mut 1, 5).await;
    // Blocking DTMF names the customer's leg (the To tag); the agent's is refused.
    let wrong =
        w.ng.request(&command("block DTMF", &[])) // from-tag: the offerer, the agent
            .await
            .unwrap();
    assert!(error_reason(&wrong).contains("offerer"), "{wrong:?}");
    ok(&w
        .ng
        .request(&command(
            "block DTMF",
            &[("from-tag", Bencode::text(TO_TAG))],
        ))
        .await
        .unwrap());
    let mut keys = Caller::on(customer.clone(), customer_to, PACE);
    keys.press("4242").await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let to_agent: Vec<Vec<u8>> = datagrams(&agent_heard);
    assert!(
        !to_agent.is_empty(),
        "the customer's audio reaches the agent"
    );
    assert!(
        to_agent.iter().all(|p| pt(p) != 101),
        "no telephone-event of the customer's reaches the agent while DTMF is blocked"
    );
    // The keys were heard on the customer's leg (counted, never named).
    let query = w.ng.request(&command("query", &[])).await.unwrap();
    let tags = ok(&query).get("tags").unwrap();
    let presses = |tag: &str| leg_stat(tags, tag, "key presses");
    assert_eq!(presses(TO_TAG), Some(4), "{query:?}");
    assert_eq!(presses(FROM_TAG), None, "the agent's leg counts no keys");
    agent_reader.abort();
    customer_reader.abort();
    let relayed: Vec<Vec<u8>> = datagrams(&customer_heard);
    assert_eq!(
        relayed, voice,
        "the agent's voice reached the customer as sent"
    );
    w.stop().await;
}

/// An RTP socket on an even port and its RTCP socket on the port above, as a phone that does
/// not mux binds them; the system gives ports until one's neighbour is free (bounded).
async fn rtp_and_rtcp() -> (Arc<UdpSocket>, Arc<UdpSocket>) {
    for _ in 0..64 {
        let rtp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let port = rtp.local_addr().unwrap().port();
        if port % 2 != 0 {
            continue;
        }
        if let Ok(rtcp) = UdpSocket::bind(SocketAddr::from(([127, 0, 0, 1], port + 1))).await {
            return (Arc::new(rtp), Arc::new(rtcp));
        }
    }
    panic!("no free even port with a free neighbour on 127.0.0.1");
}

/// An RTCP sender report (RFC 3550 §6.4.1, no report blocks) from `ssrc`, its `n`th.
fn sender_report(ssrc: u32, n: u32) -> Vec<u8> {
    let mut p = vec![0x80, 200, 0, 6];
    p.extend_from_slice(&ssrc.to_be_bytes());
    p.extend_from_slice(&(0xE000_0000u64 + u64::from(n)).to_be_bytes()); // NTP timestamp
    p.extend_from_slice(&(n * 160).to_be_bytes()); // RTP timestamp
    p.extend_from_slice(&n.to_be_bytes()); // packets sent
    p.extend_from_slice(&(n * 160).to_be_bytes()); // octets sent
    p
}

/// What a recorder heard, once it heard `n` datagrams or the limit passed.
async fn heard_at_least(heard: &Heard, n: usize) -> Vec<Vec<u8>> {
    let until = Instant::now() + Duration::from_secs(5);
    loop {
        let got = datagrams(heard);
        if got.len() >= n || Instant::now() > until {
            return got;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rtcp_on_the_port_above_is_relayed_both_ways_untouched_and_latched() {
    let mut w = world("rtcp").await;
    let (caller, caller_rtcp) = rtp_and_rtcp().await;
    let (callee, callee_rtcp) = rtp_and_rtcp().await;
    let (offered_sdp, answered_sdp) = negotiate(&mut w, &caller, &callee, &[]).await;
    // No a=rtcp: written: tonegate's RTCP is where the RFC 3550 default puts it.
    for sdp in [&offered_sdp, &answered_sdp] {
        assert!(!sdp.contains("a=rtcp:"), "{sdp}");
        assert!(!sdp.contains("a=rtcp-mux"), "{sdp}");
        assert_eq!(audio_port(sdp) % 2, 0, "RTP on an even port: {sdp}");
    }
    let caller_rtcp_to = SocketAddr::from(([127, 0, 0, 1], audio_port(&answered_sdp) + 1));
    let callee_rtcp_to = SocketAddr::from(([127, 0, 0, 1], audio_port(&offered_sdp) + 1));
    let (at_caller, caller_reader) = record(caller_rtcp.clone());
    let (at_callee, callee_reader) = record(callee_rtcp.clone());
    let (from_caller, from_callee): (Vec<_>, Vec<_>) = (1..=3)
        .map(|n| (sender_report(0xCA11_E000, n), sender_report(CALLEE_SSRC, n)))
        .unzip();
    for (up, down) in from_caller.iter().zip(&from_callee) {
        caller_rtcp.send_to(up, caller_rtcp_to).await.unwrap();
        callee_rtcp.send_to(down, callee_rtcp_to).await.unwrap();
        tokio::time::sleep(PACE).await;
    }
    assert_eq!(
        heard_at_least(&at_callee, 3).await,
        from_caller,
        "the caller's sender reports reach the callee's RTCP port as sent"
    );
    assert_eq!(
        heard_at_least(&at_caller, 3).await,
        from_callee,
        "the callee's sender reports reach the caller's RTCP port as sent"
    );
    // Each RTCP socket is latched: a report from anyone else goes nowhere.
    let hijacker = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let forged = sender_report(HIJACKER_SSRC, 9);
    hijacker.send_to(&forged, caller_rtcp_to).await.unwrap();
    hijacker.send_to(&forged, callee_rtcp_to).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    caller_reader.abort();
    callee_reader.abort();
    assert_eq!(
        at_callee.lock().unwrap().len(),
        3,
        "the forged report was refused"
    );
    assert_eq!(
        at_caller.lock().unwrap().len(),
        3,
        "the forged report was refused"
    );
    // Counted per leg: three reports each, and one foreign datagram each.
    let query = w.ng.request(&command("query", &[])).await.unwrap();
    let totals = ok(&query).get("totals").unwrap();
    assert_eq!(
        totals
            .get("RTCP")
            .and_then(|r| r.get("packets"))
            .and_then(Bencode::as_int),
        Some(6),
        "{query:?}"
    );
    let tags = ok(&query).get("tags").unwrap();
    let foreign = |tag: &str| leg_stat(tags, tag, "foreign");
    assert_eq!(foreign(FROM_TAG), Some(1), "{query:?}");
    assert_eq!(foreign(TO_TAG), Some(1), "{query:?}");
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ng_legs_take_even_ports_of_rtp_ports_whose_neighbour_is_free() {
    // Six free ports, found by binding and letting go; the second is then held, as another
    // program's RTCP would be.
    let first = (0..200)
        .map(|i| 47000 + 6 * ((std::process::id() as u16 % 300) + i))
        .find(|&p| (p..p + 6).all(|q| std::net::UdpSocket::bind(("127.0.0.1", q)).is_ok()))
        .expect("six free ports");
    let _taken = std::net::UdpSocket::bind(("127.0.0.1", first + 1)).unwrap();
    let range = format!("{first}-{}", first + 5);
    let mut w = world_with("ports", |c| ServeConfig {
        rtp_ports: Some(range.parse().unwrap()),
        ..c
    })
    .await;
    let (caller, callee) = (rtp_and_rtcp().await.0, rtp_and_rtcp().await.0);
    let (offered_sdp, answered_sdp) = negotiate(&mut w, &caller, &callee, &[]).await;
    let mut ports = [audio_port(&offered_sdp), audio_port(&answered_sdp)];
    ports.sort_unstable();
    assert_eq!(
        ports,
        [first + 2, first + 4],
        "{first} is skipped: its RTCP neighbour is taken"
    );
    for rtcp in [first + 3, first + 5] {
        assert!(
            std::net::UdpSocket::bind(("127.0.0.1", rtcp)).is_err(),
            "tonegate holds {rtcp} for RTCP"
        );
    }
    w.stop().await;
}
