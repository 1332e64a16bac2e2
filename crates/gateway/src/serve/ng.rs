//! The ng listener: rtpengine's control protocol on UDP, so that `rtpengine_offer()`,
//! `rtpengine_answer()` and `rtpengine_delete()` in a Kamailio (or OpenSIPS) configuration
//! drive tonegate as they drive rtpengine (`docs/serve.md`, "The ng protocol").
//!
//! One task reads the socket and carries out one request at a time, so a retransmission that
//! arrives while its request is being carried out waits for, and then gets, the answer kept
//! for it ([`crate::ng::cache`]): never a second call.
//!
//! An offer creates an anchored call ([`MediaMode::Anchored`]): two socket pairs (RTP on an
//! even port, RTCP on the one above), one per side, and the call task. The offer's SDP goes back rewritten ([`crate::sdp::anchor`]) to point the
//! answerer at tonegate's socket for it; the answer's, to point the offerer at the other. Both
//! pairs are taken at the offer, as rtpengine does: an answer, which comes once the callee
//! has picked up, cannot then fail for want of a port.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tonegate_call::{Call, CallConfig, MaskingConfig, MediaMode};

use super::call_task::{run_call, CallCommand, CallMedia, CallStats, Role};
use super::gateway::{bind_rtp_pair, CallHandle, Gateway, NgCall};
use super::leg::{Leg, LegStats};
use crate::metrics::CommandLabels;
use crate::ng::bencode::{self, Value};
use crate::ng::cache::ReplyCache;
use crate::ng::request::{CallerSide, Media, Options, Parsed, Request};
use crate::ng::{error_answer, frame, ok_answer, split};
use crate::sdp::{anchor, Anchored, Rewrite};

/// Answers kept for retransmissions: Kamailio retries for a few seconds at most.
const CACHE_ANSWERS: usize = 4096;
const CACHE_TTL: Duration = Duration::from_secs(30);
/// How long a `query` waits for the call task.
const QUERY_WAIT: Duration = Duration::from_secs(1);

/// Serves ng on `socket` until `stop`.
pub(super) async fn run(gateway: Arc<Gateway>, socket: UdpSocket, stop: CancellationToken) {
    let mut cache = ReplyCache::new(CACHE_ANSWERS, CACHE_TTL);
    let mut buf = vec![0u8; 65_536];
    loop {
        let received = tokio::select! {
            _ = stop.cancelled() => break,
            received = socket.recv_from(&mut buf) => received,
        };
        let Ok((n, from)) = received else { continue };
        let Some((cookie, document)) = split(&buf[..n]) else {
            gateway.metrics.ng_errors.inc();
            tracing::debug!(%from, "ng datagram without a cookie dropped");
            continue;
        };
        let cookie = cookie.to_vec();
        if let Some(kept) = cache.get(Instant::now(), from, &cookie) {
            gateway.metrics.ng_retransmissions.inc();
            let _ = socket.send_to(kept, from).await;
            continue;
        }
        let answer = answer(&gateway, document).await;
        let datagram = frame(&cookie, &answer);
        let _ = socket.send_to(&datagram, from).await;
        cache.insert(Instant::now(), from, &cookie, datagram);
    }
}

/// The answer to one request's document.
async fn answer(g: &Arc<Gateway>, document: &[u8]) -> Value {
    let count = |command: &str| {
        g.metrics
            .ng_commands
            .get_or_create(&CommandLabels {
                command: command.to_owned(),
            })
            .inc();
    };
    let refused = |reason: String| {
        g.metrics.ng_errors.inc();
        error_answer(reason)
    };
    let value = match bencode::decode(document) {
        Ok(v) => v,
        Err(e) => {
            count("invalid");
            return refused(format!(
                "malformed bencode: {e}; an ng request is COOKIE, a space, then a bencoded \
                 dictionary such as d7:command4:pinge"
            ));
        }
    };
    let parsed = match Parsed::from_value(&value) {
        Ok(p) => p,
        Err(e) => {
            count("invalid");
            return refused(e.to_string());
        }
    };
    for name in &parsed.unknown {
        g.metrics.ng_unknown_flags.inc();
        tracing::debug!(flag = %name.chars().take(64).collect::<String>(), "ng: unknown key or flag ignored");
    }
    let result = match parsed.request {
        Request::Ping => {
            count("ping");
            Ok(Value::dict([("result", Value::from("pong"))]))
        }
        Request::Offer(media) => {
            count("offer");
            offer(g, media).await
        }
        Request::Answer(media) => {
            count("answer");
            answer_media(g, media).await
        }
        Request::Delete { call_id, fatal } => {
            count("delete");
            delete(g, &call_id, fatal).await
        }
        Request::Query { call_id } => {
            count("query");
            query(g, &call_id).await
        }
        Request::List { limit } => {
            count("list");
            Ok(list(g, limit))
        }
        Request::Statistics => {
            count("statistics");
            Ok(statistics(g))
        }
        Request::BlockDtmf {
            call_id,
            from_tag,
            block,
        } => {
            count(if block { "block DTMF" } else { "unblock DTMF" });
            block_dtmf(g, &call_id, from_tag.as_deref(), block)
        }
    };
    match result {
        Ok(mut answer) => {
            if !parsed.warnings.is_empty() && answer.get("warning").is_none() {
                answer.insert("warning", Value::from(parsed.warnings.join("; ")));
            }
            answer
        }
        Err(reason) => refused(reason),
    }
}

fn rewrite_options(options: &Options) -> Rewrite<'_> {
    Rewrite {
        origin: options.replace_origin,
        rtcp_mux_offer: options.rtcp_mux_offer,
        rtcp_mux_remove: options.rtcp_mux_remove,
        strip: &options.strip,
        protocol: options.transport.as_deref(),
    }
}

/// Where the SDP's sender receives, with the request's `media address` or SIP source applied.
fn remote(anchored: &Anchored, options: &Options) -> Option<SocketAddr> {
    let remote = anchored.remote?;
    Some(match options.media_address_override() {
        Some(ip) => SocketAddr::new(ip, remote.port()),
        None => remote,
    })
}

/// Where the SDP's sender receives its RTCP when it does not mux, with the request's `media
/// address` or SIP source applied when the RTCP address is the stream's.
fn remote_rtcp(anchored: &Anchored, options: &Options) -> Option<SocketAddr> {
    let rtcp = anchored.rtcp?;
    let same_host = anchored.remote.is_some_and(|r| r.ip() == rtcp.ip());
    Some(match options.media_address_override() {
        Some(ip) if same_host => SocketAddr::new(ip, rtcp.port()),
        _ => rtcp,
    })
}

/// The command that tells the call task where a leg's SDP says it receives.
fn advertise(leg: Role, anchored: &Anchored, options: &Options) -> CallCommand {
    CallCommand::Advertise {
        leg,
        address: remote(anchored, options),
        rtcp: remote_rtcp(anchored, options),
        rtcp_mux: anchored.rtcp_mux,
    }
}

fn sdp_answer(anchored: Anchored) -> Value {
    let mut answer = ok_answer();
    answer.insert("sdp", Value::from(anchored.sdp));
    answer
}

fn no_call(call_id: &str) -> String {
    format!("no call with call-id `{call_id}`")
}

async fn offer(g: &Arc<Gateway>, media: Media) -> Result<Value, String> {
    let how = rewrite_options(&media.options);
    // A call-id seen before: a re-offer (a re-INVITE, or a retransmission with a new cookie),
    // from either leg.
    let known = {
        let ng_calls = g.ng_calls.lock().expect("not poisoned");
        ng_calls.get(&media.call_id).map(|c| {
            (
                c.offerer_tag.clone(),
                c.answerer_tag.clone(),
                c.offerer_local,
                c.answerer_local,
                c.commands.clone(),
                c.caller_is_offerer,
            )
        })
    };
    if let Some((offerer, answerer, offerer_local, answerer_local, commands, caller_is_offerer)) =
        known
    {
        let (leg, local) = if media.from_tag == offerer {
            (Role::of_offerer(caller_is_offerer), answerer_local)
        } else if answerer.as_deref() == Some(media.from_tag.as_str()) {
            (Role::of_offerer(caller_is_offerer).other(), offerer_local)
        } else {
            return Err(format!(
                "call-id `{}` is anchored between from-tag `{offerer}` and to-tag `{}`; an offer \
                 from tag `{}` is neither",
                media.call_id,
                answerer.as_deref().unwrap_or(""),
                media.from_tag
            ));
        };
        return rewrite_for(g, &commands, leg, local, &media, false);
    }
    if g.draining.load(std::sync::atomic::Ordering::SeqCst) {
        return Err("the gateway is shutting down: new calls are refused".into());
    }
    let caller_is_offerer =
        media.options.caller.unwrap_or(g.config.ng_caller) == CallerSide::Offerer;
    let (offerer_socket, offerer_rtcp) = bind_rtp_pair(g).await?;
    let (answerer_socket, answerer_rtcp) = bind_rtp_pair(g).await?;
    let offerer_local = offerer_socket.local_addr().map_err(|e| e.to_string())?;
    let answerer_local = answerer_socket.local_addr().map_err(|e| e.to_string())?;
    // The offer goes to the answerer: it points the answerer at the socket facing it.
    let anchored = anchor(&media.sdp, answerer_local, &how).map_err(|e| e.to_string())?;
    let mut config = CallConfig {
        mode: MediaMode::Anchored,
        // Until media flows the call rings (the caller cannot send before the answer tells it
        // where to, and a 183 may carry no early media): it waits as long as the offer
        // timeout allows; the call task switches to the media timeout at the first packet.
        no_media_timeout: Duration::from_secs(g.config.ng_offer_timeout_seconds),
        inband: g.inband.clone(),
        masking: MaskingConfig {
            whole_call: g.config.mask_whole_call,
            hold_over: Duration::from_millis(g.config.mask_hold_over_ms),
            replacement: g.config.mask_replacement.into(),
        },
        red_payload_types: anchored.red.clone(),
        ..CallConfig::default()
    };
    if !anchored.telephone_event.is_empty() {
        config.event_payload_types = anchored.telephone_event.clone();
    }
    let codec = |name: &str| -> Vec<u8> {
        anchored
            .audio
            .iter()
            .filter(|(_, n)| *n == name)
            .map(|(pt, _)| *pt)
            .collect()
    };
    config.audio.pcmu_payload_types = codec("PCMU");
    config.audio.pcma_payload_types = codec("PCMA");
    // The offerer's address is known from the offer; the answerer's comes with the answer.
    // Until the answer says otherwise, the offerer muxes RTCP if it offered to.
    let offerer = Leg::new(offerer_socket, true, remote(&anchored, &media.options)).with_rtcp(
        offerer_rtcp,
        remote_rtcp(&anchored, &media.options),
        anchored.rtcp_mux,
    );
    let answerer = Leg::new(answerer_socket, true, None).with_rtcp(answerer_rtcp, None, false);
    let (caller, agent, caller_local) = if caller_is_offerer {
        (offerer, answerer, offerer_local)
    } else {
        (answerer, offerer, answerer_local)
    };
    let media_sockets = CallMedia {
        caller,
        agent: Some(agent),
        sip_call_id: Some(media.call_id.clone()),
        media_timeout: Some(Duration::from_secs(g.config.no_media_timeout_seconds)),
    };
    let id = g.id("call");
    let (tx, rx) = mpsc::unbounded_channel();
    g.calls.lock().expect("not poisoned").insert(
        id.clone(),
        CallHandle {
            commands: tx.clone(),
            rtp: caller_local,
        },
    );
    let now = SystemTime::now();
    g.ng_calls.lock().expect("not poisoned").insert(
        media.call_id.clone(),
        NgCall {
            call: id.clone(),
            offerer_tag: media.from_tag.clone(),
            answerer_tag: None,
            offerer_local,
            answerer_local,
            caller_is_offerer,
            created: now,
            last_signal: now,
            commands: tx.clone(),
        },
    );
    let call = Call::new(config, Instant::now());
    g.metrics.calls.inc();
    g.metrics.active_calls.inc();
    tokio::spawn(run_call(g.clone(), id.clone(), media_sockets, call, tx, rx));
    tracing::info!(
        call = %id, sip_call_id = %media.call_id, caller = %offerer_local, agent = %answerer_local,
        "call created over ng"
    );
    Ok(sdp_answer(anchored))
}

fn touch(g: &Gateway, call_id: &str) {
    if let Some(c) = g.ng_calls.lock().expect("not poisoned").get_mut(call_id) {
        c.last_signal = SystemTime::now();
    }
}

async fn answer_media(g: &Arc<Gateway>, media: Media) -> Result<Value, String> {
    let to_tag = media.to_tag.clone().unwrap_or_default();
    let (leg, local, commands) = {
        let mut ng_calls = g.ng_calls.lock().expect("not poisoned");
        let Some(c) = ng_calls.get_mut(&media.call_id) else {
            return Err(format!(
                "{}: an answer comes after its offer",
                no_call(&media.call_id)
            ));
        };
        let offerer_role = Role::of_offerer(c.caller_is_offerer);
        if to_tag == c.offerer_tag {
            // The offerer answers a re-INVITE from the answerer: the answer goes to the answerer.
            (offerer_role, c.answerer_local, c.commands.clone())
        } else if media.from_tag == c.offerer_tag
            || c.answerer_tag.as_deref() == Some(&media.from_tag)
        {
            // The callee answers (a later answer, from another fork, replaces an earlier).
            c.answerer_tag = Some(to_tag.clone());
            (offerer_role.other(), c.offerer_local, c.commands.clone())
        } else {
            return Err(format!(
                "call-id `{}` was offered by from-tag `{}`; an answer from `{}` to `{to_tag}` \
                 belongs to no leg of it",
                media.call_id, c.offerer_tag, media.from_tag
            ));
        }
    };
    rewrite_for(g, &commands, leg, local, &media, true)
}

/// A re-offer or an answer on a known call, from the side with `leg`: its SDP rewritten to
/// point the other side at `local`, and the call told where that side receives.
fn rewrite_for(
    g: &Gateway,
    commands: &mpsc::UnboundedSender<CallCommand>,
    leg: Role,
    local: SocketAddr,
    media: &Media,
    answer: bool,
) -> Result<Value, String> {
    let anchored =
        anchor(&media.sdp, local, &rewrite_options(&media.options)).map_err(|e| e.to_string())?;
    let _ = commands.send(advertise(leg, &anchored, &media.options));
    if answer {
        // The offerer muxes RTCP only if the answer it gets says so too.
        let _ = commands.send(CallCommand::RtcpMuxAnswered {
            leg: leg.other(),
            mux: anchored.rtcp_mux_passed,
        });
    }
    if leg == Role::Agent {
        // The caller sends with the payload type numbers of the agent leg's SDP.
        let _ = commands.send(CallCommand::PayloadTypes {
            event: anchored.telephone_event.clone(),
            red: anchored.red.clone(),
        });
    }
    touch(g, &media.call_id);
    Ok(sdp_answer(anchored))
}

async fn call_stats(commands: &mpsc::UnboundedSender<CallCommand>) -> Option<CallStats> {
    let (reply, stats) = oneshot::channel();
    commands.send(CallCommand::Query(reply)).ok()?;
    tokio::time::timeout(QUERY_WAIT, stats).await.ok()?.ok()
}

async fn delete(g: &Arc<Gateway>, call_id: &str, fatal: bool) -> Result<Value, String> {
    let entry = g.ng_calls.lock().expect("not poisoned").remove(call_id);
    let Some(entry) = entry else {
        if fatal {
            return Err(no_call(call_id));
        }
        let mut answer = ok_answer();
        answer.insert(
            "warning",
            Value::from(format!("{}: nothing to delete", no_call(call_id))),
        );
        return Ok(answer);
    };
    let stats = call_stats(&entry.commands).await;
    // The hang-up: an open session ends as `caller-hung-up`.
    let _ = entry.commands.send(CallCommand::HangUp);
    tracing::info!(call = %entry.call, sip_call_id = %call_id, "call deleted over ng");
    let mut answer = ok_answer();
    if let Some(stats) = stats {
        describe(&mut answer, &entry, &stats);
    }
    Ok(answer)
}

async fn query(g: &Arc<Gateway>, call_id: &str) -> Result<Value, String> {
    let commands = g
        .ng_calls
        .lock()
        .expect("not poisoned")
        .get(call_id)
        .map(|c| c.commands.clone())
        .ok_or_else(|| no_call(call_id))?;
    let stats = call_stats(&commands)
        .await
        .ok_or_else(|| format!("call-id `{call_id}`: the call is ending"))?;
    let ng_calls = g.ng_calls.lock().expect("not poisoned");
    let entry = ng_calls.get(call_id).ok_or_else(|| no_call(call_id))?;
    let mut answer = ok_answer();
    describe(&mut answer, entry, &stats);
    Ok(answer)
}

fn unix(t: SystemTime) -> Value {
    Value::from(t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()))
}

fn endpoint(address: SocketAddr) -> Value {
    Value::dict([
        (
            "family",
            Value::from(if address.is_ipv4() { "IPv4" } else { "IPv6" }),
        ),
        ("address", Value::from(address.ip().to_string())),
        ("port", Value::from(u64::from(address.port()))),
    ])
}

/// The leg with `tag` as rtpengine's `query` describes it, in dialogue with `other`.
fn tag(tag: &str, other: &str, created: SystemTime, leg: &LegStats, keys: Option<u64>) -> Value {
    let mut stats = Value::dict([
        ("packets", Value::from(leg.packets)),
        ("bytes", Value::from(leg.bytes)),
        ("errors", Value::from(leg.refused)),
        ("lost", Value::from(leg.lost)),
        ("foreign", Value::from(leg.foreign)),
    ]);
    if let Some(keys) = keys {
        // How many, never which.
        stats.insert("key presses", Value::from(keys));
    }
    let mut stream = Value::Dict(Vec::new());
    if let Some(local) = leg.local {
        stream.insert("local port", Value::from(u64::from(local.port())));
    }
    if let Some(at) = leg.endpoint {
        stream.insert("endpoint", endpoint(at));
    }
    if let Some(at) = leg.advertised {
        stream.insert("advertised endpoint", endpoint(at));
    }
    if let Some(at) = leg.last_packet {
        stream.insert("last packet", unix(at));
    }
    stream.insert("flags", Value::List(vec![Value::from("RTP")]));
    stream.insert("stats", stats);
    let mut medias = Value::dict([
        ("index", Value::from(1u64)),
        ("type", Value::from("audio")),
        ("protocol", Value::from("RTP/AVP")),
    ]);
    medias.insert("streams", Value::List(vec![stream]));
    Value::dict([
        ("tag", Value::from(tag)),
        ("created", unix(created)),
        ("in dialogue with", Value::from(other)),
        ("medias", Value::List(vec![medias])),
    ])
}

/// Fills a `query` (or `delete`) answer: times, the legs by tag, totals.
fn describe(answer: &mut Value, entry: &NgCall, stats: &CallStats) {
    let answerer = entry.answerer_tag.as_deref().unwrap_or("");
    // Each tag with its side's leg; key presses are counted on the caller's only.
    let (caller_tag, agent_tag) = if entry.caller_is_offerer {
        (entry.offerer_tag.as_str(), answerer)
    } else {
        (answerer, entry.offerer_tag.as_str())
    };
    let mut tags = Value::dict([(
        caller_tag,
        tag(
            caller_tag,
            agent_tag,
            entry.created,
            &stats.caller,
            Some(stats.key_presses),
        ),
    )]);
    if let Some(agent) = &stats.agent {
        tags.insert(
            agent_tag,
            tag(agent_tag, caller_tag, entry.created, agent, None),
        );
    }
    let legs = std::iter::once(&stats.caller).chain(stats.agent.as_ref());
    let (mut rtp, mut rtcp) = ((0u64, 0u64, 0u64), 0u64);
    for leg in legs {
        rtp.0 += leg.packets;
        rtp.1 += leg.bytes;
        rtp.2 += leg.refused;
        rtcp += leg.rtcp;
    }
    answer.insert("created", unix(entry.created));
    answer.insert("last signal", unix(entry.last_signal));
    answer.insert("tags", tags);
    answer.insert(
        "totals",
        Value::dict([
            (
                "RTP",
                Value::dict([
                    ("packets", Value::from(rtp.0)),
                    ("bytes", Value::from(rtp.1)),
                    ("errors", Value::from(rtp.2)),
                ]),
            ),
            (
                "RTCP",
                Value::dict([
                    ("packets", Value::from(rtcp)),
                    ("errors", Value::from(0u64)),
                ]),
            ),
        ]),
    );
}

fn list(g: &Gateway, limit: usize) -> Value {
    let ng_calls = g.ng_calls.lock().expect("not poisoned");
    let mut calls: Vec<(&SystemTime, &String)> =
        ng_calls.iter().map(|(id, c)| (&c.created, id)).collect();
    calls.sort();
    let mut answer = ok_answer();
    answer.insert(
        "calls",
        Value::List(
            calls
                .into_iter()
                .take(limit)
                .map(|(_, id)| Value::from(id.as_str()))
                .collect(),
        ),
    );
    answer
}

/// rtpengine's `statistics` shape, with the counters tonegate keeps.
fn statistics(g: &Gateway) -> Value {
    let m = &g.metrics;
    let own = g.ng_calls.lock().expect("not poisoned").len() as u64;
    let total = m.active_calls.get().max(0) as u64;
    let command = |name: &str| {
        m.ng_commands
            .get_or_create(&CommandLabels {
                command: name.to_owned(),
            })
            .get()
    };
    let uptime = g.started.elapsed().map_or(0, |d| d.as_secs());
    let mut answer = ok_answer();
    answer.insert(
        "statistics",
        Value::dict([
            (
                "currentstatistics",
                Value::dict([
                    ("sessionsown", Value::from(own)),
                    ("sessionsforeign", Value::from(0u64)),
                    ("sessionstotal", Value::from(total)),
                ]),
            ),
            (
                "totalstatistics",
                Value::dict([
                    ("uptime", Value::from(uptime.to_string())),
                    ("managedsessions", Value::from(m.calls.get())),
                    (
                        "relayedpackets",
                        Value::from(m.rtp_packets.get() + m.rtp_agent_packets.get()),
                    ),
                    (
                        "relayedpacketerrors",
                        Value::from(m.rtp_refused.get() + m.rtp_foreign_source.get()),
                    ),
                ]),
            ),
            (
                "controlstatistics",
                Value::dict([
                    ("totalpingcount", Value::from(command("ping"))),
                    ("totaloffercount", Value::from(command("offer"))),
                    ("totalanswercount", Value::from(command("answer"))),
                    ("totaldeletecount", Value::from(command("delete"))),
                    ("totalquerycount", Value::from(command("query"))),
                    ("totallistcount", Value::from(command("list"))),
                    ("totalstatistics", Value::from(command("statistics"))),
                    ("totalblkdtmfcount", Value::from(command("block DTMF"))),
                    ("totalunblkdtmfcount", Value::from(command("unblock DTMF"))),
                    ("totalerrorcount", Value::from(m.ng_errors.get())),
                ]),
            ),
        ]),
    );
    answer
}

fn block_dtmf(
    g: &Gateway,
    call_id: &str,
    from_tag: Option<&str>,
    block: bool,
) -> Result<Value, String> {
    let ng_calls = g.ng_calls.lock().expect("not poisoned");
    let entry = ng_calls.get(call_id).ok_or_else(|| no_call(call_id))?;
    if let Some(tag) = from_tag {
        let answerer = entry.answerer_tag.as_deref();
        let (caller, agent, agent_side) = if entry.caller_is_offerer {
            (Some(entry.offerer_tag.as_str()), answerer, "answerer")
        } else {
            (answerer, Some(entry.offerer_tag.as_str()), "offerer")
        };
        if Some(tag) != caller {
            let whose = if Some(tag) == agent {
                format!("is the {agent_side}'s leg, the agent's, which tonegate relays untouched")
            } else {
                "names no leg of the call".to_owned()
            };
            return Err(format!(
                "from-tag `{tag}` {whose}: tonegate blocks DTMF from the caller (tag `{}`) only",
                caller.unwrap_or("not answered yet")
            ));
        }
    }
    let _ = entry.commands.send(CallCommand::BlockDtmf(block));
    Ok(ok_answer())
}
