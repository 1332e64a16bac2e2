#!/usr/bin/env python3
"""Generate the RFC 4733 pcap fixtures and their manifests.

    python3 scripts/gen_fixtures.py [--out DIR]      # default: fixtures/

Writes (and overwrites) DIR/rfc4733/, DIR/links/ and DIR/bad/: pcap/pcapng files plus one
manifest.toml per directory describing the key presses `tonegate replay` must report.
It leaves DIR/real/ alone.

Output is byte-identical on every run: a fixed seed for SSRCs and sequence/timestamp bases,
fixed capture timestamps (the first packet of every capture is at epoch 1700000000.0), and
capture files written by this script's own pcap/pcapng writer (no host, OS or time options).
scapy (pip install scapy) is used only to build the Ethernet/VLAN/SLL/IP/UDP layers.

Conventions (see the brief in the manifests' `about` fields):
  * 8 kHz clock, 20 ms packetisation (160 samples), PCMU audio on PT 0 (160 bytes of 0xFF),
    telephone-event on PT 101 unless stated, 10.0.0.1:40000 -> 10.0.0.2:50000.
  * The sender works in 20 ms "slots": slot k is sent at capture time t0 + 20 ms * k and an
    audio packet in slot k has RTP timestamp base + 160 * k.
  * A press of n slots starting at slot s: event packets in slots s, s+1, ... all with
    RTP timestamp base + 160 * s, the duration field being the time elapsed at sending
    (160, 320, ...); the packet in slot s+n-1 carries the E bit and duration 160 * n and is
    sent three times (slots s+n-1, s+n, s+n+1). Audio pauses while the event is sent.
  * starts_ms / durations_ms in the manifests follow the definition in the manifest header.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import struct
import sys
from dataclasses import dataclass, field
from pathlib import Path

try:
    from scapy.layers.inet import IP, UDP
    from scapy.layers.inet6 import IPv6
    from scapy.layers.l2 import CookedLinux, CookedLinuxV2, Dot1Q, Ether
    from scapy.packet import Raw
    from scapy.layers.dns import DNS, DNSQR
except ImportError:  # pragma: no cover
    sys.exit("gen_fixtures.py needs scapy: pip install scapy")

EPOCH_NS = 1_700_000_000 * 1_000_000_000
SLOT_NS = 20_000_000
SAMPLES = 160  # per 20 ms slot at 8 kHz
CLOCK = 8000
EVENT_PT = 101
AUDIO_PT = 0
SEED = 4733

SRC4, DST4 = "10.0.0.1", "10.0.0.2"
SRC6, DST6 = "fd00::1", "fd00::2"
SPORT, DPORT = 40000, 50000
SRC_MAC, DST_MAC = "02:00:00:00:00:01", "02:00:00:00:00:02"

KEYS = "0123456789*#ABCD"


def event_code(key: str) -> int:
    return KEYS.index(key)


# --------------------------------------------------------------------------------------------
# RTP model
# --------------------------------------------------------------------------------------------


@dataclass
class Pkt:
    """One RTP packet as sent (lost packets are kept, flagged, and dropped on output)."""

    time_ns: int
    ssrc: int
    seq: int
    ts: int
    pt: int
    marker: bool
    payload: bytes
    lost: bool = False
    tag: str = ""  # free-form label used by scenarios to find packets

    def rtp(self) -> bytes:
        b0 = 0x80
        b1 = (0x80 if self.marker else 0) | (self.pt & 0x7F)
        return struct.pack("!BBHII", b0, b1, self.seq & 0xFFFF, self.ts & 0xFFFFFFFF, self.ssrc) + self.payload


def event_payload(event: int, end: bool, volume: int, duration: int) -> bytes:
    assert 0 <= event <= 255 and 0 <= volume <= 63 and 0 <= duration <= 0xFFFF
    return struct.pack("!BBH", event, (0x80 if end else 0) | volume, duration)


@dataclass
class Press:
    """What a press must decode to (for the manifest)."""

    key: str  # '' for non-key events
    start_ms: float | None
    duration_ms: float | None


class Sender:
    """One RTP stream (one SSRC) sending audio and telephone-events slot by slot."""

    def __init__(self, rng: random.Random, t0_ns: int = EPOCH_NS, *, ssrc=None, seq=None, ts=None,
                 event_pt: int = EVENT_PT, audio_pt: int = AUDIO_PT):
        self.ssrc = rng.getrandbits(32) if ssrc is None else ssrc
        self.seq = rng.randrange(1000, 30000) if seq is None else seq
        self.ts0 = rng.getrandbits(31) if ts is None else ts
        self.t0_ns = t0_ns
        self.event_pt = event_pt
        self.audio_pt = audio_pt
        self.slot = 0
        self.pkts: list[Pkt] = []
        self.presses: list[Press] = []
        self.first_slot: int | None = None  # slot of this SSRC's first packet (for starts_ms)

    # -- primitives ---------------------------------------------------------------------------
    def emit(self, slot: int, ts_off: int, pt: int, marker: bool, payload: bytes, tag: str = "") -> Pkt:
        p = Pkt(self.t0_ns + slot * SLOT_NS, self.ssrc, self.seq & 0xFFFF, (self.ts0 + ts_off) & 0xFFFFFFFF,
                pt, marker, payload, tag=tag)
        self.seq = (self.seq + 1) & 0xFFFF
        self.pkts.append(p)
        if self.first_slot is None:
            self.first_slot = slot
        return p

    def audio(self, n: int = 1) -> None:
        for _ in range(n):
            self.emit(self.slot, self.slot * SAMPLES, self.audio_pt, False, b"\xff" * 160, tag="audio")
            self.slot += 1

    def audio_until(self, slot: int) -> None:
        while self.slot < slot:
            self.audio()

    def start_ms_of(self, start_slot: int) -> float:
        # capture time of the SSRC's first packet relative to the capture start is added by
        # the caller (Capture.manifest_presses); here: media offset from the first packet.
        return (start_slot - self.first_slot) * SAMPLES * 1000 / CLOCK

    # -- a key press ---------------------------------------------------------------------------
    def press(self, key: str | int, slots: int = 5, *, volume: int = 10, ends: int = 3,
              marker: str = "first", zero_first: bool = False, lose_ends: bool = False,
              only_ends: bool = False, ts_increment: bool = False, long_mode: str = "segments",
              gap_slots: int = 5, audio_after: bool = True, expect: bool = True,
              expect_duration_slots: int | None = None, tag: str = "") -> list[Pkt]:
        """Send one event of `slots` x 20 ms starting at the current slot.

        Afterwards the current slot is the first slot after the last (re)transmission, and, if
        audio_after, audio fills up to gap_slots after the end of the event (the next press
        starts there).
        """
        event = event_code(key) if isinstance(key, str) else key
        s = self.slot
        total = slots * SAMPLES
        ev_ts_off = s * SAMPLES
        sent: list[Pkt] = []
        first = True

        def send(slot: int, ts_off: int, end: bool, dur_field: int, what: str) -> None:
            nonlocal first
            m = marker == "all" or (marker == "first" and first)
            p = self.emit(slot, ts_off, self.event_pt, m, event_payload(event, end, volume, dur_field),
                          tag=f"{tag}{what}")
            first = False
            sent.append(p)

        slot = s
        if not only_ends:
            # Updates: the duration field is the time elapsed when the packet is sent.
            seg_start = 0          # offset of the current segment from the event start
            last_elapsed = None    # elapsed samples in the previous update
            j = 0
            while True:
                elapsed = SAMPLES * (j if zero_first else j + 1)
                if elapsed >= total:
                    break
                if ts_increment:
                    ts_off, dur = ev_ts_off + j * SAMPLES, elapsed
                elif long_mode == "wrap":
                    ts_off, dur = ev_ts_off, elapsed & 0xFFFF
                else:  # RFC 4733 2.5.1.3 segments
                    if elapsed - seg_start > 0xFFFF:
                        # The previous update ended its segment: send it twice more (2.5.1.4),
                        # then start a new segment at previous start + previous duration.
                        for _ in range(2):
                            send(slot, ev_ts_off + seg_start, False, last_elapsed - seg_start, "segend")
                            slot += 1
                            j += 1
                        seg_start = last_elapsed
                        continue
                    ts_off, dur = ev_ts_off + seg_start, elapsed - seg_start
                send(slot, ts_off, False, dur, "upd")
                last_elapsed = elapsed
                slot += 1
                j += 1
            if ts_increment:
                end_ts_off, end_dur = ev_ts_off + j * SAMPLES, total
            elif long_mode == "wrap":
                end_ts_off, end_dur = ev_ts_off, total & 0xFFFF
            else:
                if total - seg_start > 0xFFFF:
                    raise ValueError("press ends right at a segment boundary: pick another length")
                end_ts_off, end_dur = ev_ts_off + seg_start, total - seg_start
        else:
            # Only the final packet (x3), sent when the key is released; audio went on meanwhile.
            self.audio_until(s + slots - 1)
            slot = self.slot
            end_ts_off, end_dur = ev_ts_off, total
        for i in range(ends):
            send(slot, end_ts_off, True, end_dur, f"end{i}")
            sent[-1].lost = lose_ends
            slot += 1
        self.slot = slot
        end_slot = s + slots + (1 if zero_first else 0)
        if expect:
            if lose_ends:
                dur_ms = None
            else:
                dur_ms = total * 1000 / CLOCK
            if expect_duration_slots is not None:
                dur_ms = expect_duration_slots * SAMPLES * 1000 / CLOCK
            k = key if isinstance(key, str) else (KEYS[key] if key < 16 else "")
            self.presses.append(Press(k, self.start_ms_of(s), dur_ms))
        if audio_after:
            self.audio_until(end_slot + gap_slots)
        return sent

    def last_seen_duration(self, sent: list[Pkt]) -> float:
        """Largest duration field among delivered packets of a press, in ms."""
        d = max(struct.unpack("!H", p.payload[2:4])[0] for p in sent if not p.lost)
        return d * 1000 / CLOCK


# --------------------------------------------------------------------------------------------
# Capture: packets of one or more senders, link-layer encapsulation, writers
# --------------------------------------------------------------------------------------------


class Capture:
    def __init__(self):
        self.senders: list[Sender] = []
        self.extra_presses: list[Press] = []

    def add(self, s: Sender) -> Sender:
        self.senders.append(s)
        return s

    def packets(self) -> list[Pkt]:
        pk = [p for s in self.senders for p in s.pkts if not p.lost]
        pk.sort(key=lambda p: p.time_ns)  # stable: send order within a sender kept
        return pk

    def presses(self) -> list[Press]:
        """Expected presses in order of start time, with starts relative to the capture start."""
        pk = self.packets()
        t_first = pk[0].time_ns
        out = []
        for s in self.senders:
            first_cap = min(p.time_ns for p in s.pkts if not p.lost)
            first_pkt = next(p for p in s.pkts if not p.lost)
            # definition: capture time of the first delivered packet of the SSRC + media offset
            # of the press from that packet's RTP timestamp.
            first_slot_delivered = (first_pkt.time_ns - s.t0_ns) // SLOT_NS
            assert first_pkt.ts == (s.ts0 + first_slot_delivered * SAMPLES) & 0xFFFFFFFF, "first packet must be audio"
            for pr in s.presses:
                if not pr.key:
                    continue
                st = None
                if pr.start_ms is not None:
                    media_ms = pr.start_ms - (first_slot_delivered - s.first_slot) * 20.0
                    st = (first_cap - t_first) / 1e6 + media_ms
                out.append(Press(pr.key, st, pr.duration_ms))
        out.sort(key=lambda p: p.start_ms if p.start_ms is not None else 0.0)
        return out


def udp_payload_frames(payloads: list[tuple[int, bytes]], link: str, ip_id0: int = 0x1000) -> list[tuple[int, bytes]]:
    """Wrap (time_ns, udp payload) into frames for the given link type."""
    out = []
    for i, (t, pl) in enumerate(payloads):
        out.append((t, encap(pl, link, ip_id0 + i)))
    return out


def encap(pl: bytes, link: str, ip_id: int, sport: int = SPORT, dport: int = DPORT,
          src4: str = SRC4, dst4: str = DST4) -> bytes:
    udp = UDP(sport=sport, dport=dport) / Raw(pl)
    if link == "ipv6":
        l3 = IPv6(src=SRC6, dst=DST6, hlim=64) / udp
    else:
        l3 = IP(src=src4, dst=dst4, id=ip_id & 0xFFFF, flags="DF", ttl=64) / udp
    if link in ("ether", "ipv6"):
        fr = Ether(src=SRC_MAC, dst=DST_MAC) / l3
    elif link == "vlan":
        fr = Ether(src=SRC_MAC, dst=DST_MAC) / Dot1Q(vlan=100, prio=5) / l3
    elif link == "sll":
        fr = CookedLinux(pkttype=0, lladdrtype=1, lladdrlen=6, src=bytes.fromhex("020000000001") + b"\0\0",
                         proto=0x0800) / l3
    elif link == "sll2":
        fr = CookedLinuxV2(proto=0x0800, ifindex=2, lladdrtype=1, pkttype=0, lladdrlen=6,
                           src=bytes.fromhex("020000000001") + b"\0\0") / l3
    elif link == "raw":
        fr = l3
    else:
        raise ValueError(link)
    return bytes(fr)


LINKTYPE = {"ether": 1, "ipv6": 1, "vlan": 1, "sll": 113, "sll2": 276, "raw": 101}


def pcap_bytes(frames: list[tuple[int, bytes]], linktype: int, nanos: bool = False, snaplen: int = 262144) -> bytes:
    magic = 0xA1B23C4D if nanos else 0xA1B2C3D4
    out = [struct.pack("<IHHiIII", magic, 2, 4, 0, 0, snaplen, linktype)]
    for t, fr in frames:
        sec, frac = divmod(t, 1_000_000_000)
        if not nanos:
            assert frac % 1000 == 0
            frac //= 1000
        out.append(struct.pack("<IIII", sec, frac, len(fr), len(fr)) + fr)
    return b"".join(out)


def _pad4(b: bytes) -> bytes:
    return b + b"\0" * (-len(b) % 4)


def _block(btype: int, body: bytes) -> bytes:
    ln = 12 + len(body)
    return struct.pack("<II", btype, ln) + body + struct.pack("<I", ln)


def pcapng_bytes(frames: list[tuple[int, bytes]], linktype: int, tsresol: int = 9) -> bytes:
    """Minimal deterministic pcapng: SHB (no options), one IDB (if_tsresol), EPBs."""
    shb = _block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1))
    opts = struct.pack("<HH", 9, 1) + _pad4(bytes([tsresol])) + struct.pack("<HH", 0, 0)
    idb = _block(0x00000001, struct.pack("<HHI", linktype, 0, 262144) + opts)
    out = [shb, idb]
    unit = 10 ** (9 - tsresol)
    for t, fr in frames:
        assert t % unit == 0
        ts = t // unit
        body = struct.pack("<IIIII", 0, ts >> 32, ts & 0xFFFFFFFF, len(fr), len(fr)) + _pad4(fr)
        out.append(_block(0x00000006, body))
    return b"".join(out)


def rtp_frames(cap: Capture, link: str = "ether") -> list[tuple[int, bytes]]:
    return udp_payload_frames([(p.time_ns, p.rtp()) for p in cap.packets()], link)


# --------------------------------------------------------------------------------------------
# Manifest writing
# --------------------------------------------------------------------------------------------


def toml_str(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def fmt_ms(x: float) -> str:
    r = round(x, 3)
    return f"{r:.1f}" if r == round(r, 1) else f"{r}"


@dataclass
class Entry:
    file: str
    about: str
    keys: str
    args: list[str] = field(default_factory=list)
    starts_ms: list[float] | None = None
    durations_ms: list[float] | None = None
    tshark: bool = True
    tshark_why: str = ""
    expect_error: str = ""

    def toml(self) -> str:
        lines = ["[[fixture]]", f"file = {toml_str(self.file)}", f"about = {toml_str(self.about)}"]
        if self.args:
            lines.append("args = [" + ", ".join(toml_str(a) for a in self.args) + "]")
        lines.append(f"keys = {toml_str(self.keys)}")
        if self.starts_ms is not None:
            lines.append("starts_ms = [" + ", ".join(fmt_ms(x) for x in self.starts_ms) + "]")
        if self.durations_ms is not None:
            lines.append("durations_ms = [" + ", ".join(fmt_ms(x) for x in self.durations_ms) + "]")
        lines.append(f"tshark = {'true' if self.tshark else 'false'}")
        if not self.tshark:
            lines.append(f"tshark_why = {toml_str(self.tshark_why)}")
        if self.expect_error:
            lines.append(f"expect_error = {toml_str(self.expect_error)}")
        return "\n".join(lines) + "\n"


MANIFEST_HEADER = """\
# Generated by scripts/gen_fixtures.py -- do not edit by hand; edit the script and rerun it.
#
# One [[fixture]] per capture file:
#   file          capture file, relative to this directory
#   about         what the fixture exercises
#   args          extra arguments for `tonegate replay` (optional)
#   keys          expected key presses, in order of start time over all streams
#   starts_ms     (optional) start of each press: capture time of the first packet of the press's
#                 SSRC (capture order) relative to the capture's first packet, plus (press RTP
#                 start timestamp - RTP timestamp of that SSRC's first packet, both extended to
#                 64 bits) / 8 kHz
#   durations_ms  (optional) total duration of each press in samples / 8 (lost end packets: the
#                 largest duration seen); given only where unambiguous
#   tshark        whether scripts/tshark_presses.py must agree (default true)
#   tshark_why    when tshark = false: why
#   expect_error  (fixtures/bad only) the failure expected from `tonegate replay`
"""


def entry_from(cap: Capture, file: str, about: str, *, args=None, starts=True, durations=True,
               tshark=True, tshark_why="") -> Entry:
    pr = cap.presses()
    keys = "".join(p.key for p in pr)
    st = [p.start_ms for p in pr] if starts and all(p.start_ms is not None for p in pr) else None
    du = [p.duration_ms for p in pr] if durations and all(p.duration_ms is not None for p in pr) else None
    return Entry(file, about, keys, args or [], st, du, tshark, tshark_why)


# --------------------------------------------------------------------------------------------
# Scenarios: fixtures/rfc4733
# --------------------------------------------------------------------------------------------


def lead_in(s: Sender, n: int = 6) -> None:
    s.audio(n)


def sc_keys(rng, keys: str, **kw) -> Capture:
    cap = Capture()
    s = cap.add(Sender(rng, **kw))
    lead_in(s)
    for k in keys:
        s.press(k)
    s.audio(10)
    return cap


def sc_basic(rng):
    return sc_keys(rng, "4111")


def sc_triple_end(rng):
    return sc_keys(rng, "5")


def sc_lost_end_timeout(rng):
    cap = Capture()
    s = cap.add(Sender(rng))
    lead_in(s)
    sent = s.press("7", lose_ends=True, audio_after=False)
    s.presses[-1].duration_ms = s.last_seen_duration(sent)
    s.audio(50)  # audio goes on for 1 s after the (lost) end
    return cap


def sc_lost_end_next_event(rng):
    cap = Capture()
    s = cap.add(Sender(rng))
    lead_in(s)
    sent = s.press("1", lose_ends=True, audio_after=False)
    s.presses[-1].duration_ms = s.last_seen_duration(sent)
    # key 2's first packet 80 ms after key 1's last delivered packet; no audio in between
    last = max(p.time_ns for p in sent if not p.lost)
    s.slot = (last - s.t0_ns) // SLOT_NS + 4
    s.press("2")
    s.audio(10)
    return cap


def sc_only_end(rng):
    cap = Capture()
    s = cap.add(Sender(rng))
    lead_in(s)
    for k in "369":
        s.press(k, only_ends=True)
    s.audio(10)
    return cap


def sc_marker(rng, mode):
    cap = Capture()
    s = cap.add(Sender(rng))
    lead_in(s)
    for k in "12":
        s.press(k, marker=mode)
    s.audio(10)
    return cap


def sc_reorder_dup(rng):
    cap = Capture()
    s = cap.add(Sender(rng))
    lead_in(s)
    a = s.press("0")
    b = s.press("#")
    s.audio(10)
    # a: upd160 upd320 upd480 upd640 end0 end1 end2 -> arrival order below, with capture
    # times kept in arrival order (each arrival takes the slot time of that position).
    # Pairwise swaps; upd320 and end2 duplicated (same seq twice); end0 before upd640.
    order_a = [a[1], a[0], a[1], a[2], a[4], a[3], a[6], a[5], a[6]]
    # b: swap pairs (0,1), (2,3) (5,6); duplicate upd160; an end before the last update again.
    order_b = [b[1], b[0], b[0], b[4], b[2], b[3], b[6], b[5]]

    def rearrange(sent, order):
        times = sorted(p.time_ns for p in sent)
        # a duplicate arrives 1 ms after the previous arrival and takes no slot of its own
        seen = set()
        out = []
        ti = 0
        for p in order:
            if id(p) in seen:
                q = Pkt(out[-1].time_ns + 1_000_000, p.ssrc, p.seq, p.ts, p.pt, p.marker, p.payload, tag=p.tag + "dup")
            else:
                q = Pkt(times[ti], p.ssrc, p.seq, p.ts, p.pt, p.marker, p.payload, tag=p.tag)
                ti += 1
                seen.add(id(p))
            out.append(q)
        assert ti == len(times)
        return out

    pk = s.pkts
    for sent, order in ((a, order_a), (b, order_b)):
        i = pk.index(sent[0])
        new = rearrange(sent, order)
        pk[i:i + len(sent)] = new
    return cap


def sc_wrap(rng):
    cap = Capture()
    # Sequence 65530 wraps during key 8; the timestamp wraps in the middle of key '*'
    # (which starts in slot 13 and covers slots 13..17): wrap after 15.5 slots.
    ts0 = (1 << 32) - 15 * SAMPLES - 80
    s = cap.add(Sender(rng, seq=65530, ts=ts0))
    s.audio(3)
    for k in "8*9":
        s.press(k)
    s.audio(10)
    return cap


def sc_long(rng, mode):
    cap = Capture()
    s = cap.add(Sender(rng))
    lead_in(s)
    s.press("1", slots=500, long_mode=mode)
    s.audio(10)
    return cap


def sc_zero_duration(rng):
    cap = Capture()
    s = cap.add(Sender(rng))
    lead_in(s)
    s.press("3", zero_first=True)
    # A stray, lone event 9 with duration 0 (marker set, no E, nothing else for it).
    s.emit(s.slot, s.slot * SAMPLES, s.event_pt, True, event_payload(9, False, 10, 0), tag="stray")
    s.slot += 1
    s.audio(15)
    return cap


def sc_non_key(rng):
    cap = Capture()
    s = cap.add(Sender(rng))
    lead_in(s)
    s.press("1")
    s.press(16, slots=10)  # flash
    s.press(32)            # a non-DTMF event code
    s.press("2")
    s.audio(10)
    return cap


def red_wrap(cap: Capture, s: Sender, red_pt: int, depth: int = 2) -> None:
    """Re-encode every event packet of s as RFC 2198 RED (PT red_pt) carrying the previous
    `depth` event payloads as redundant blocks. Loss flags are kept on the RED packets."""
    history: list[Pkt] = []
    for p in s.pkts:
        if p.pt != s.event_pt:
            continue
        red = [h for h in history[-depth:] if 0 <= ((p.ts - h.ts) & 0xFFFFFFFF) < (1 << 14)]
        hdr = b""
        data = b""
        for h in red:
            off = (p.ts - h.ts) & 0xFFFFFFFF
            hdr += struct.pack("!I", (1 << 31) | (s.event_pt << 24) | (off << 10) | len(h.payload))
            data += h.payload
        hdr += bytes([s.event_pt])
        history.append(Pkt(p.time_ns, p.ssrc, p.seq, p.ts, p.pt, p.marker, p.payload))
        p.pt = red_pt
        p.payload = hdr + data + p.payload


def sc_red(rng):
    cap = Capture()
    s = cap.add(Sender(rng))
    lead_in(s)
    a = s.press("2")
    b = s.press("7")
    s.audio(10)
    a[0].lost = True            # first packet of 2 (the marker one): recovered from redundancy
    for p in a[4:]:
        p.lost = True           # all three end packets of 2: recovered from 7's first packets
    b[2].lost = True            # an update of 7
    b[4].lost = True            # the first end packet of 7 (two more follow)
    red_wrap(cap, s, 99)
    return cap


def sc_ssrc_change(rng):
    cap = Capture()
    a = cap.add(Sender(rng))
    lead_in(a)
    for k in "12":
        a.press(k)
    a.audio(3)
    t_switch = a.t0_ns + a.slot * SLOT_NS
    b = cap.add(Sender(rng, t0_ns=t_switch))  # new SSRC, new random seq and timestamp bases
    b.audio(4)
    for k in "34":
        b.press(k)
    b.audio(10)
    return cap


def sc_same_key_twice(rng):
    cap = Capture()
    s = cap.add(Sender(rng))
    lead_in(s)
    s.press("5")
    s.press("5")
    s.audio(10)
    sent = s.press("5", lose_ends=True, audio_after=False)
    s.presses[-1].duration_ms = s.last_seen_duration(sent)
    # next press starts 100 ms after where the lost end said the key was released
    s.audio_until((sent[0].time_ns - s.t0_ns) // SLOT_NS + 5 + 5)
    s.press("5")
    s.audio(10)
    return cap


def sc_incrementing_ts(rng):
    cap = Capture()
    s = cap.add(Sender(rng))
    lead_in(s)
    for k in "42":
        s.press(k, ts_increment=True)
    s.audio(10)
    return cap


def sc_pt96(rng):
    cap = Capture()
    s = cap.add(Sender(rng, event_pt=96))
    lead_in(s)
    for k in "99":
        s.press(k)
    s.audio(10)
    return cap


def sc_volume(rng):
    cap = Capture()
    s = cap.add(Sender(rng))
    lead_in(s)
    for k, v in zip("1590", (0, 10, 36, 63)):
        s.press(k, volume=v)
    s.audio(10)
    return cap


RFC4733 = [
    # file, builder, about, kwargs for entry_from
    ("basic.pcap", sc_basic, "keys 4111 with PCMU audio between presses: the canonical happy path", {}),
    ("triple-end.pcap", sc_triple_end, "end packet sent three times: one press", {}),
    ("lost-end-timeout.pcap", sc_lost_end_timeout,
     "key 7 whose end packets are all lost, audio goes on for 1 s: one press ended by timeout, duration = last duration seen", {}),
    ("lost-end-next-event.pcap", sc_lost_end_next_event,
     "key 1 with all end packets lost, key 2 starting 80 ms after its last packet (no audio between): two presses", {}),
    ("only-end-packets.pcap", sc_only_end,
     "each press is only its end packet sent three times (audio continues during the key): keys 369", {}),
    ("marker-missing.pcap", lambda r: sc_marker(r, "none"), "no marker bit on any event packet", {}),
    ("marker-every-packet.pcap", lambda r: sc_marker(r, "all"), "marker bit on every event packet", {}),
    ("reorder-duplicate.pcap", sc_reorder_dup,
     "event packets swapped pairwise and some duplicated (same seq twice), an end packet arriving before the last update", {}),
    ("ts-seq-wrap.pcap", sc_wrap,
     "sequence number starts at 65530 and wraps during key 8; RTP timestamp wraps past 2^32 during key *", {}),
    ("long-event-segments.pcap", lambda r: sc_long(r, "segments"),
     "key 1 held 10 s, sent as RFC 4733 2.5.1.3 segments (new timestamp = previous start + previous duration, segment end sent 3 times, E only on the final segment): one press", {}),
    ("long-event-duration-wrap.pcap", lambda r: sc_long(r, "wrap"),
     "key 1 held 10 s by a buggy sender that lets the 16-bit duration wrap with the same timestamp: one press of 10 s", {}),
    ("zero-duration.pcap", sc_zero_duration,
     "key 3 whose first event packet has duration 0, then a lone event 9 packet with duration 0 that must be ignored", {}),
    ("non-key-events.pcap", sc_non_key,
     "event 16 (flash) and event 32 between keys 1 and 2: non-key events are never digits", {}),
    ("red.pcap", sc_red,
     "RFC 2198 RED (PT 99) carrying telephone-event PT 101, redundancy 2; first packet of 2 and all end packets of 2 lost (recovered from redundant blocks), an update and one end of 7 lost",
     {"args": ["--red-pt", "99"]}),
    ("ssrc-change.pcap", sc_ssrc_change,
     "same 5-tuple: keys 12 on one SSRC, then a new SSRC with new sequence and timestamp bases sends 34", {}),
    ("same-key-twice.pcap", sc_same_key_twice,
     "5 5 with 100 ms between, then 5 5 again where the first of the pair has lost its end packets: four presses", {}),
    ("incrementing-ts.pcap", sc_incrementing_ts,
     "buggy sender incrementing the RTP timestamp by 160 on every packet of an event (durations still cumulative): one press per key",
     {"durations": False}),
    ("pt-96.pcap", sc_pt96, "telephone-event on payload type 96", {"args": ["--event-pt", "96"]}),
    ("volume.pcap", sc_volume, "presses at volumes 0, 10, 36 and 63 (-dBm0): volume never changes the key", {}),
]


# --------------------------------------------------------------------------------------------
# fixtures/links
# --------------------------------------------------------------------------------------------

LINKS = [
    ("vlan.pcap", "vlan", "pcap", "Ethernet with an 802.1Q VLAN tag (VLAN 100)"),
    ("sll.pcap", "sll", "pcap", "Linux cooked capture v1 (LINKTYPE_LINUX_SLL, 113)"),
    ("sll2.pcap", "sll2", "pcap", "Linux cooked capture v2 (LINKTYPE_LINUX_SLL2, 276)"),
    ("raw-ip.pcap", "raw", "pcap", "raw IPv4, no link header (LINKTYPE_RAW, 101)"),
    ("ipv6.pcap", "ipv6", "pcap", "IPv6 over Ethernet (fd00::1 -> fd00::2)"),
    ("ether.pcapng", "ether", "pcapng", "pcapng, Ethernet, one interface with if_tsresol = 9 (nanoseconds)"),
    ("ether-nanosecond.pcap", "ether", "pcap-ns", "classic pcap with the nanosecond magic 0xa1b23c4d, Ethernet"),
]


# --------------------------------------------------------------------------------------------
# main
# --------------------------------------------------------------------------------------------


def write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def write_manifest(d: Path, entries: list[Entry]) -> None:
    write(d / "manifest.toml", (MANIFEST_HEADER + "".join("\n" + e.toml() for e in entries)).encode())


def gen_rfc4733(out: Path) -> None:
    d = out / "rfc4733"
    entries = []
    for name, build, about, kw in RFC4733:
        rng = random.Random(f"{SEED}/rfc4733/{name}")
        cap = build(rng)
        write(d / name, pcap_bytes(rtp_frames(cap), 1))
        e = entry_from(cap, name, about, args=kw.get("args"), durations=kw.get("durations", True))
        entries.append(e)
    write_manifest(d, entries)


def gen_links(out: Path) -> None:
    d = out / "links"
    entries = []
    for name, link, fmt, about in LINKS:
        rng = random.Random(f"{SEED}/links")  # the same RTP in every link fixture
        cap = sc_keys(rng, "123")
        frames = rtp_frames(cap, link)
        if fmt == "pcapng":
            data = pcapng_bytes(frames, LINKTYPE[link])
        else:
            data = pcap_bytes(frames, LINKTYPE[link], nanos=(fmt == "pcap-ns"))
        write(d / name, data)
        entries.append(entry_from(cap, name, about + ": keys 123"))
    write_manifest(d, entries)


def gen_bad(out: Path) -> None:
    d = out / "bad"
    entries = []

    write(d / "not-a-capture.pcap", b"This is not a packet capture.\nIt is a text file named .pcap.\n")
    entries.append(Entry("not-a-capture.pcap", "a text file with a .pcap name", "", tshark=False,
                         tshark_why="not a capture", expect_error="not a pcap or pcapng capture"))

    # truncated: basic 4111, cut in the middle of a packet record after the 2nd press completed.
    rng = random.Random(f"{SEED}/bad/truncated")
    cap = sc_keys(rng, "4111")
    pk = cap.packets()
    frames = rtp_frames(cap)
    data = pcap_bytes(frames, 1)
    # index of the packet after the third end packet of press 2, then 2 audio packets further
    ends = [i for i, p in enumerate(pk) if p.pt == EVENT_PT and p.payload[1] & 0x80]
    cut_pkt = ends[5] + 3  # 6th end packet = last end of press 2
    off = 24 + sum(16 + len(fr) for _, fr in frames[:cut_pkt])
    cut = off + 16 + 30   # record header complete, packet data cut after 30 of its bytes
    write(d / "truncated.pcap", data[:cut])
    pr = cap.presses()[:2]
    entries.append(Entry("truncated.pcap",
                         "basic 4111 cut off in the middle of a packet record after the 2nd press completed: the presses before the damage are reported",
                         "".join(p.key for p in pr), [], [p.start_ms for p in pr], [p.duration_ms for p in pr],
                         tshark=True, expect_error="truncated"))

    write(d / "empty.pcap", pcap_bytes([], 1))
    entries.append(Entry("empty.pcap", "valid pcap header, no packets", "", expect_error="no packets"))

    # no-rtp: DNS queries and answers plus syslog over UDP, nothing RTP-like
    frames = []
    t = EPOCH_NS
    for i, name in enumerate(["example.com", "tonegate.test", "pay.example.org", "sip.example.net"]):
        q = DNS(id=0x1234 + i * 0x111, rd=1, qd=DNSQR(qname=name, qtype="A"))
        frames.append((t, bytes(Ether(src=SRC_MAC, dst=DST_MAC) / IP(src=SRC4, dst="10.0.0.53", id=0x2000 + i, ttl=64)
                                / UDP(sport=53000 + i, dport=53) / q)))
        t += SLOT_NS
        msg = f"<134>Nov 14 22:13:{20 + i:02d} host app[42]: message {i}".encode()
        frames.append((t, bytes(Ether(src=SRC_MAC, dst=DST_MAC) / IP(src=SRC4, dst="10.0.0.9", id=0x3000 + i, ttl=64)
                                / UDP(sport=41000, dport=514) / Raw(msg))))
        t += SLOT_NS
    write(d / "no-rtp.pcap", pcap_bytes(frames, 1))
    entries.append(Entry("no-rtp.pcap", "DNS and syslog over UDP, no RTP at all", "", expect_error="no RTP"))

    rng = random.Random(f"{SEED}/bad/unknown-linktype")
    cap = sc_keys(rng, "123")
    write(d / "unknown-linktype.pcap", pcap_bytes(rtp_frames(cap), 147))
    entries.append(Entry("unknown-linktype.pcap",
                         "valid pcap header with link type 147 (LINKTYPE_USER0) over Ethernet frames of keys 123",
                         "", tshark=False, tshark_why="tshark has no dissector for user0 by default",
                         expect_error="unsupported link type 147"))
    write_manifest(d, entries)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    root = Path(__file__).resolve().parent.parent
    ap.add_argument("--out", type=Path, default=root / "fixtures", help="output directory (default: fixtures/)")
    args = ap.parse_args(argv)
    gen_rfc4733(args.out)
    gen_links(args.out)
    gen_bad(args.out)
    h = hashlib.sha256()
    for sub in ("rfc4733", "links", "bad"):
        for p in sorted((args.out / sub).iterdir()):
            h.update(p.name.encode() + b"\0" + p.read_bytes())
    print(f"wrote {args.out}/{{rfc4733,links,bad}}  digest {h.hexdigest()[:16]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
