#!/usr/bin/env python3
"""The checks of one call of scripts/sip-e2e.sh, read from its loopback capture with tshark.

    python3 tools/sip/check_call.py --capture FILE --mode rtpengine|tonegate
        --keying rfc4733|inband --call-id ID --kamailio PORT --uac-sip PORT --uas-sip PORT
        --ng PORT --uac-media PORT --uas-media PORT --pcaps DIR --out DIR [--label TEXT]
        [--agent-json FILE]

Prints one line per check, `PASS label: what` or `FAIL label: what, and what was seen`, and
exits 1 when any failed. Writes to DIR what the agent's side (the UAS) received: its audio as
mu-law (`uas-received.ul`), what multimon-ng heard in it, and the ng requests and answers of
the call (`ng/`, via tools/sip/ng.py extract).

What is checked, in both modes:
  * the call went through Kamailio: INVITE and its 200 OK, ACK, BYE and its 200 OK, each
    relayed between the UAC and the UAS by Kamailio, all with the call's Call-ID;
  * the SDP each agent saw points at the media proxy, not at the other agent;
  * RTP went both ways through the proxy, counted on each side, and none went around it;
  * the agent's voice reached the caller unchanged, payload for payload;
  * the proxy was asked offer, answer and delete (after the BYE) over ng, and answered ok.
In rtpengine mode, which proves the harness: the keys reach the UAS (telephone-events as sent,
tones multimon-ng decodes into the keyed digits), so the same observation finding nothing in
tonegate mode means something. In tonegate mode: the UAS got the caller's audio but no
telephone-event and no tone multimon-ng can decode.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

FIELDS = [
    "frame.time_epoch", "udp.srcport", "udp.dstport",
    "sip.Method", "sip.Status-Code", "sip.Call-ID", "sip.CSeq.method",
    "sdp.connection_info.address", "sdp.media.port",
    "rtp.p_type", "rtp.seq", "rtp.timestamp", "rtp.payload",
    "rtpevent.event_id", "rtpevent.end_of_event",
]
EVENT_KEYS = "0123456789*#ABCD"


class Checks:
    def __init__(self, label: str):
        self.label, self.failed = label, 0

    def check(self, ok: bool, what: str, seen: str = "") -> bool:
        if ok:
            print(f"PASS {self.label}: {what}" + (f" ({seen})" if seen else ""))
        else:
            self.failed += 1
            print(f"FAIL {self.label}: {what}" + (f": {seen}" if seen else ""))
        return ok


def read(capture: str, ports: list[int], sip_ports: list[int]) -> list[dict]:
    cmd = ["tshark", "-r", capture, "-T", "fields", "-E", "separator=\t", "-E", "occurrence=a",
           "-E", "aggregator=,"]
    for p in ports:
        cmd += ["-d", f"udp.port=={p},rtp"]
    for p in sip_ports:
        cmd += ["-d", f"udp.port=={p},sip"]
    for f in FIELDS:
        cmd += ["-e", f]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    rows = []
    for line in out.splitlines():
        values = line.split("\t")
        values += [""] * (len(FIELDS) - len(values))
        rows.append(dict(zip(FIELDS, values)))
    return rows


def main() -> int:
    p = argparse.ArgumentParser()
    for name in ("capture", "mode", "keying", "call-id", "pcaps", "out"):
        p.add_argument(f"--{name}", required=True)
    for name in ("kamailio", "uac-sip", "uas-sip", "ng", "uac-media", "uas-media"):
        p.add_argument(f"--{name}", type=int, required=True)
    p.add_argument("--label", default="call")
    p.add_argument("--agent-json", help="tonegate mode: tools/sip/agent.py pay's record of the session")
    a = p.parse_args()
    c = Checks(a.label)
    os.makedirs(a.out, exist_ok=True)
    manifest = json.load(open(os.path.join(a.pcaps, "manifest.json")))
    keys = manifest["keys"]
    sent_caller = manifest[f"caller-{a.keying}"]

    rows = read(a.capture, [a.uac_media, a.uas_media], [a.kamailio, a.uac_sip, a.uas_sip])
    sip = [r for r in rows if r["sip.Call-ID"] == a.call_id]

    def hop(src: int, dst: int, method: str = "", status: str = "", cseq: str = "") -> list[dict]:
        return [r for r in sip if int(r["udp.srcport"]) == src and int(r["udp.dstport"]) == dst
                and (not method or r["sip.Method"] == method)
                and (not status or r["sip.Status-Code"] == status)
                and (not cseq or r["sip.CSeq.method"] == cseq)]

    k, uac, uas = a.kamailio, a.uac_sip, a.uas_sip
    legs = {
        "INVITE caller->Kamailio": hop(uac, k, "INVITE"),
        "INVITE Kamailio->agent": hop(k, uas, "INVITE"),
        "200 OK agent->Kamailio": hop(uas, k, status="200", cseq="INVITE"),
        "200 OK Kamailio->caller": hop(k, uac, status="200", cseq="INVITE"),
        "ACK Kamailio->agent": hop(k, uas, "ACK"),
        "BYE caller->Kamailio": hop(uac, k, "BYE"),
        "BYE Kamailio->agent": hop(k, uas, "BYE"),
        "200 OK (BYE) Kamailio->caller": hop(k, uac, status="200", cseq="BYE"),
    }
    missing = [name for name, hits in legs.items() if not hits]
    c.check(not missing, "the call went through Kamailio (INVITE, 200 OK, ACK, BYE, 200 OK, each relayed)",
            f"missing {', '.join(missing)}" if missing else f"Call-ID {a.call_id}")
    if missing:
        return 1

    def sdp(r: dict) -> tuple[str, int]:
        return r["sdp.connection_info.address"].split(",")[0], int(r["sdp.media.port"].split(",")[0] or 0)

    offer_ip, offer_port = sdp(legs["INVITE caller->Kamailio"][0])
    uas_ip, proxy_uas_side = sdp(legs["INVITE Kamailio->agent"][0])
    answer_ip, answer_port = sdp(legs["200 OK agent->Kamailio"][0])
    uac_ip, proxy_uac_side = sdp(legs["200 OK Kamailio->caller"][0])
    c.check(offer_port == a.uac_media and answer_port == a.uas_media,
            "the agents offered and answered their own media ports",
            f"offer {offer_ip}:{offer_port}, answer {answer_ip}:{answer_port}")
    c.check(uas_ip == "127.0.0.1" and proxy_uas_side not in (0, a.uac_media, a.uas_media),
            "the SDP the agent (UAS) received points at the media proxy",
            f"c={uas_ip} m=audio {proxy_uas_side}, caller's port {a.uac_media}")
    c.check(uac_ip == "127.0.0.1" and proxy_uac_side not in (0, a.uac_media, a.uas_media, proxy_uas_side),
            "the SDP the caller (UAC) received points at the media proxy",
            f"c={uac_ip} m=audio {proxy_uac_side}, agent's port {a.uas_media}")

    rtp = [r for r in rows if r["rtp.p_type"]]

    def flow(src: int, dst: int) -> list[dict]:
        return [r for r in rtp if int(r["udp.srcport"]) == src and int(r["udp.dstport"]) == dst]

    caller_out = flow(a.uac_media, proxy_uac_side)
    agent_in = flow(proxy_uas_side, a.uas_media)
    agent_out = flow(a.uas_media, proxy_uas_side)
    caller_in = flow(proxy_uac_side, a.uac_media)
    around = flow(a.uac_media, a.uas_media) + flow(a.uas_media, a.uac_media)
    pt = lambda rs, t: [r for r in rs if r["rtp.p_type"] == str(t)]  # noqa: E731

    c.check(len(caller_out) >= 0.98 * sent_caller["packets"],
            "the caller sent its capture to the proxy",
            f"{len(caller_out)} of {sent_caller['packets']} packets, "
            f"{len(pt(caller_out, 101))} telephone-events")
    audio_sent = len(pt(caller_out, 0))
    audio_got = len(pt(agent_in, 0))
    c.check(audio_sent > 0 and audio_got >= 0.98 * audio_sent,
            "caller's audio went through the proxy to the agent",
            f"caller->proxy {audio_sent} PCMU packets, proxy->agent {audio_got}")
    c.check(len(agent_out) >= 0.98 * manifest["agent"]["packets"] and len(caller_in) >= 0.98 * len(agent_out),
            "agent's audio went through the proxy to the caller",
            f"agent->proxy {len(agent_out)} packets (capture holds {manifest['agent']['packets']}), "
            f"proxy->caller {len(caller_in)}")
    c.check(not around, "no RTP went around the proxy", f"{len(around)} packets agent<->caller directly")
    sent_payloads = [r["rtp.payload"] for r in agent_out]
    got_payloads = [r["rtp.payload"] for r in caller_in]
    c.check(got_payloads == sent_payloads, "the agent's voice reached the caller unchanged, payload for payload",
            f"{len(got_payloads)} of {len(sent_payloads)} payloads identical" if got_payloads == sent_payloads
            else f"{sum(1 for x, y in zip(got_payloads, sent_payloads) if x == y)} of {len(sent_payloads)} equal in order")

    # The caller's voice (the lead-in, before the first key) must reach the agent, masking or
    # not: packets matched by RTP timestamp (kept by both proxies), payloads compared.
    voice = [r for r in pt(caller_out, 0)][: sent_caller["voice_packets"]]
    by_ts = {r["rtp.timestamp"]: r["rtp.payload"] for r in pt(agent_in, 0)}
    same = sum(1 for r in voice if by_ts.get(r["rtp.timestamp"]) == r["rtp.payload"])
    arrived = sum(1 for r in voice if r["rtp.timestamp"] in by_ts)
    c.check(bool(voice) and same >= 0.95 * len(voice),
            "the caller's voice reached the agent unchanged (the lead-in before the keys)",
            f"{same} of {len(voice)} voice packets identical, {arrived} arrived")

    # What the agent's side received: telephone-events, and audio for multimon-ng.
    events = [r for r in agent_in if r["rtpevent.event_id"]]
    presses = []
    last_ts = None
    for r in events:
        if r["rtp.timestamp"] != last_ts:
            presses.append(EVENT_KEYS[int(r["rtpevent.event_id"])])
            last_ts = r["rtp.timestamp"]
    heard_events = "".join(presses)
    audio = b"".join(bytes.fromhex(r["rtp.payload"].replace(":", "")) for r in pt(agent_in, 0))
    ul = os.path.join(a.out, "uas-received.ul")
    with open(ul, "wb") as f:
        f.write(audio)
    raw22 = subprocess.run(["sox", "-R", "-t", "ul", "-r", "8000", "-c", "1", ul, "-t", "raw", "-e", "signed",
                            "-b", "16", "-r", "22050", "-"], check=True, capture_output=True).stdout
    mm = subprocess.run(["multimon-ng", "-q", "-c", "-a", "DTMF", "-t", "raw", "-"], input=raw22,
                        capture_output=True).stdout.decode()
    with open(os.path.join(a.out, "multimon-ng.txt"), "w") as f:
        f.write(mm)
    heard_tones = "".join(l.split(":", 1)[1].strip() for l in mm.splitlines() if l.startswith("DTMF:"))
    seconds = len(audio) / 8000

    if a.mode == "rtpengine":
        if a.keying == "rfc4733":
            c.check(len(events) == sent_caller["event_packets"] and heard_events == keys,
                    "control: the telephone-events reach the agent through rtpengine (tshark: rtpevent)",
                    f"{len(events)} of {sent_caller['event_packets']} event packets, keys {heard_events!r}")
        else:
            c.check(heard_tones == keys,
                    "control: multimon-ng decodes the in-band keys in what the agent received",
                    f"{seconds:.1f} s of audio, multimon-ng heard {heard_tones!r}, keyed {keys!r}")
    else:
        # Only counts here: what leaked is card data, even if this card is a test card.
        if a.agent_json:
            agent = json.load(open(a.agent_json))
            collecting = [s["at"] for s in agent.get("states", []) if s["state"] == "collecting"]
            first_key = float(caller_out[0]["frame.time_epoch"]) + sent_caller["key_starts_ms"][0] / 1000
            c.check(bool(collecting) and collecting[0] < first_key,
                    "the session was collecting before the caller's first key (else masking is not on trial)",
                    f"collecting {collecting[0] - first_key:+.2f} s from the first key" if collecting
                    else "the session never collected")
        c.check(audio_got > 0 and not events,
                "the agent received the caller's audio but no telephone-event (tshark: rtpevent)",
                f"{audio_got} PCMU packets, {len(events)} telephone-events"
                + (f" ({len(presses)} key presses)" if events else ""))
        c.check(not heard_tones, "multimon-ng decodes no tone in what the agent received",
                f"{seconds:.1f} s of audio" + (f", {len(heard_tones)} digits heard" if heard_tones else ""))

    # ng: offer, answer, delete for this call, each answered ok; the delete after the BYE.
    ng_dir = os.path.join(a.out, "ng")
    out = subprocess.run([sys.executable, os.path.join(os.path.dirname(__file__), "ng.py"), "extract",
                          a.capture, str(a.ng), ng_dir], check=True, capture_output=True, text=True).stdout
    msgs = [json.loads(l) for l in out.splitlines()]
    by_cookie: dict[str, dict] = {}
    for m in msgs:
        by_cookie.setdefault(m["cookie"], {}).update(m)
    # Requests of this harness (tools/sip/ng.py: cookies "e2e...") are not Kamailio's.
    asked = [m for m in by_cookie.values() if m.get("request", {}).get("call-id") == a.call_id
             and not m["cookie"].startswith("e2e")]
    results = {m["request"]["command"]: m.get("reply", {}).get("result") for m in asked}
    c.check(all(results.get(cmd) == "ok" for cmd in ("offer", "answer", "delete")),
            "Kamailio asked the proxy offer, answer and delete over ng, each answered ok",
            ", ".join(f"{cmd}: {res}" for cmd, res in results.items()) or "no ng request for this call")
    bye_at = float(legs["BYE caller->Kamailio"][0]["frame.time_epoch"])
    relayed_at = float(legs["BYE Kamailio->agent"][0]["frame.time_epoch"])
    deletes = [m for m in asked if m["request"]["command"] == "delete"]
    c.check(len(deletes) == 1 and bye_at <= deletes[0]["request_at"] <= relayed_at + 0.5,
            "the BYE through Kamailio triggered the delete",
            ", ".join(f"delete {1000 * (m['request_at'] - bye_at):.1f} ms after the BYE reached Kamailio, "
                      f"which relayed it {1000 * (relayed_at - bye_at):.1f} ms after" for m in deletes)
            or "no delete")
    flags = sorted({k for m in asked for k in m["request"] if k not in ("sdp", "call-id", "command")})
    print(f"     {a.label}: ng keys Kamailio sent: {', '.join(flags)}")
    return 1 if c.failed else 0


if __name__ == "__main__":
    sys.exit(main())
