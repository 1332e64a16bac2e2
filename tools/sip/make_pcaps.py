#!/usr/bin/env python3
"""The RTP that scripts/sip-e2e.sh's SIPp agents play with `play_pcap_audio`.

    python3 tools/sip/make_pcaps.py OUT_DIR [--keys KEYS] [--lead-ms MS] [--tail-ms MS]

Writes, byte for byte the same on every run (fixed SSRCs, sequence and timestamp bases,
capture times from epoch 1700000000):

  caller-rfc4733.pcap  the caller: PCMU every 20 ms (voice, then silence), and each key of KEYS as an RFC 4733
                       telephone-event on PT 101 (five updates 20 ms apart, the end packet
                       three times, volume -10 dBm0; audio pauses during the press, as the
                       testkit's Caller sends), then 100 ms of silence
  caller-inband.pcap   the same keys as in-band tones in the PCMU audio: 100 ms of the key's
                       pair at -10 dBm0 per tone, then 100 ms of silence; no PT 101 at all
  agent.pcap           the agent's voice: a speech-like buzz (harmonics of 140 Hz, amplitude
                       modulated at 4 Hz) in PCMU, no DTMF in it
  manifest.json        durations, keys, and where the keys start (ms from the first packet)

Each caller capture starts with LEAD_MS of lead-in (time for the harness to start a payment
session once the call is up): the caller's voice (the same buzz at 120 Hz) for all but its
last second, then silence; it ends with TAIL_MS of silence. The default KEYS are what a
tonegate payment session with the sandbox needs: card 4242424242424242, '#', expiry 1230, CVV
123, postal code 94107, '#' (as `tonegate demo` keys them).

Only Python's standard library: the capture is Ethernet/IPv4/UDP from 10.0.0.1:40000 to
10.0.0.2:50000 (SIPp rewrites the addresses and ports when it plays it).
"""

from __future__ import annotations

import argparse
import json
import math
import struct
from pathlib import Path

RATE = 8000
SLOT_SAMPLES = 160  # 20 ms of 8 kHz audio
SLOT_US = 20_000
EPOCH = 1_700_000_000
FULL_SCALE_SINE_DBM0 = 3.14  # as tonegate_media::g711
EVENT_PT = 101
DEFAULT_KEYS = "4242424242424242#123012394107#"

# ITU-T Q.23: low and high frequency of each key.
KEYPAD = {
    "1": (697, 1209), "2": (697, 1336), "3": (697, 1477), "A": (697, 1633),
    "4": (770, 1209), "5": (770, 1336), "6": (770, 1477), "B": (770, 1633),
    "7": (852, 1209), "8": (852, 1336), "9": (852, 1477), "C": (852, 1633),
    "*": (941, 1209), "0": (941, 1336), "#": (941, 1477), "D": (941, 1633),
}
# RFC 4733 §3.2 event codes.
EVENT_CODE = {**{str(d): d for d in range(10)}, "*": 10, "#": 11, "A": 12, "B": 13, "C": 14, "D": 15}


def ulaw(sample: int) -> int:
    """G.711 mu-law of a 16-bit sample (0x84 bias, 32635 clip), as tonegate_media::g711."""
    sign = 0
    if sample < 0:
        sample = -sample
        sign = 0x80
    s = min(sample, 32635) + 0x84
    exponent = max(s.bit_length() - 1 - 7, 0)
    exponent = min(exponent, 7)
    mantissa = (s >> (exponent + 3)) & 0x0F
    return ~(sign | (exponent << 4) | mantissa) & 0xFF


SILENCE = bytes([ulaw(0)]) * SLOT_SAMPLES


def amplitude(dbm0: float) -> float:
    return 32767.0 * 10 ** ((dbm0 - FULL_SCALE_SINE_DBM0) / 20.0)


def tone_slot(key: str, first_sample: int) -> bytes:
    """20 ms of `key`'s pair at -10 dBm0 per tone, phase continuous from sample 0 of the press."""
    low, high = KEYPAD[key]
    a = amplitude(-10.0)
    out = bytearray()
    for n in range(first_sample, first_sample + SLOT_SAMPLES):
        t = n / RATE
        v = a * (math.sin(2 * math.pi * low * t) + math.sin(2 * math.pi * high * t))
        out.append(ulaw(max(-32768, min(32767, round(v)))))
    return bytes(out)


def voice_slot(first_sample: int, f0: float = 140.0) -> bytes:
    """20 ms of a buzz like voiced speech: harmonics 1-8 of `f0` falling 6 dB an octave,
    amplitude modulated at 4 Hz (syllables), peaking near -15 dBm0."""
    a = amplitude(-15.0)
    out = bytearray()
    for n in range(first_sample, first_sample + SLOT_SAMPLES):
        t = n / RATE
        env = 0.5 * (1 - math.cos(2 * math.pi * 4 * t))
        v = sum(math.sin(2 * math.pi * f0 * h * t + h) / h for h in range(1, 9)) / 2.0
        out.append(ulaw(max(-32768, min(32767, round(a * env * v)))))
    return bytes(out)


class Stream:
    """One RTP stream being written: packets with their capture time in microseconds."""

    def __init__(self, ssrc: int, seq: int, ts: int):
        self.ssrc, self.seq, self.ts = ssrc, seq, ts
        self.packets: list[tuple[int, bytes]] = []

    def send(self, at_us: int, pt: int, marker: bool, ts: int, payload: bytes) -> None:
        header = struct.pack(
            "!BBHII", 0x80, (0x80 if marker else 0) | pt, self.seq & 0xFFFF, ts & 0xFFFFFFFF, self.ssrc
        )
        self.seq += 1
        self.packets.append((at_us, header + payload))


def caller(keys: str, lead_ms: int, tail_ms: int, inband: bool) -> tuple[Stream, list[int]]:
    """The caller's stream and the start (ms) of each key press."""
    s = Stream(0x7E5CDA55 if not inband else 0x7E5CDA56, 1000, 160_000)
    slot = 0
    starts = []

    def audio(payload: bytes) -> None:
        nonlocal slot
        s.send(slot * SLOT_US, 0, False, s.ts + slot * SLOT_SAMPLES, payload)
        slot += 1

    # The caller talks (a buzz at 120 Hz, not the agent's 140 Hz) for all but the last second
    # of the lead-in: audio a proxy must pass, masking or not.
    voice = max(lead_ms - 1000, 0) // 20
    for i in range(lead_ms // 20):
        audio(voice_slot(i * SLOT_SAMPLES, 120.0) if i < voice else SILENCE)
    for key in keys:
        starts.append(slot * 20)
        if inband:
            for i in range(5):
                audio(tone_slot(key, i * SLOT_SAMPLES))
        else:
            start_ts = s.ts + slot * SLOT_SAMPLES
            code = EVENT_CODE[key]
            for i in range(5):
                dur = (i + 1) * SLOT_SAMPLES
                payload = struct.pack("!BBH", code, 10, dur)
                s.send(slot * SLOT_US, EVENT_PT, i == 0, start_ts, payload)
                slot += 1
            # The end packet three times, 1 ms apart, then audio resumes in the same slot.
            end = struct.pack("!BBH", code, 0x80 | 10, 5 * SLOT_SAMPLES)
            for r in range(3):
                s.send(slot * SLOT_US - 3000 + r * 1000, EVENT_PT, False, start_ts, end)
        for _ in range(5):
            audio(SILENCE)
    for _ in range(tail_ms // 20):
        audio(SILENCE)
    return s, starts


def agent(ms: int) -> Stream:
    s = Stream(0x0A6E0001, 5000, 90_000)
    for slot in range(ms // 20):
        s.send(slot * SLOT_US, 0, slot == 0, s.ts + slot * SLOT_SAMPLES, voice_slot(slot * SLOT_SAMPLES))
    return s


def write_pcap(path: Path, stream: Stream) -> None:
    """A classic pcap (microseconds, Ethernet) of the stream, 10.0.0.1:40000 -> 10.0.0.2:50000."""
    out = bytearray(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
    for at_us, rtp in sorted(stream.packets, key=lambda p: p[0]):
        udp = struct.pack("!HHHH", 40000, 50000, 8 + len(rtp), 0) + rtp
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0x4000, 64, 17, 0,
                         bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2]))
        ip = ip[:10] + struct.pack("!H", ip_checksum(ip)) + ip[12:]
        frame = b"\x02\x00\x00\x00\x00\x02" + b"\x02\x00\x00\x00\x00\x01" + b"\x08\x00" + ip + udp
        t = EPOCH * 1_000_000 + at_us
        out += struct.pack("<IIII", t // 1_000_000, t % 1_000_000, len(frame), len(frame)) + frame
    path.write_bytes(bytes(out))


def ip_checksum(header: bytes) -> int:
    total = sum(struct.unpack("!10H", header))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("out", type=Path)
    p.add_argument("--keys", default=DEFAULT_KEYS)
    p.add_argument("--lead-ms", type=int, default=4000)
    p.add_argument("--tail-ms", type=int, default=3000)
    a = p.parse_args()
    for k in a.keys:
        if k not in KEYPAD:
            p.error(f"`{k}` is not a keypad key")
    a.out.mkdir(parents=True, exist_ok=True)
    manifest = {"keys": a.keys, "lead_ms": a.lead_ms, "tail_ms": a.tail_ms}
    for name, inband in (("caller-rfc4733", False), ("caller-inband", True)):
        s, starts = caller(a.keys, a.lead_ms, a.tail_ms, inband)
        write_pcap(a.out / f"{name}.pcap", s)
        manifest[name] = {
            "duration_ms": s.packets[-1][0] // 1000 + 20,
            "packets": len(s.packets),
            "event_packets": sum(1 for _, b in s.packets if b[1] & 0x7F == EVENT_PT),
            "key_starts_ms": starts,
            "voice_packets": max(a.lead_ms - 1000, 0) // 20,
        }
    duration = manifest["caller-rfc4733"]["duration_ms"]
    # The agent talks for most of the call, and stops before the caller does.
    ag = agent(max(duration - 2000, 1000))
    write_pcap(a.out / "agent.pcap", ag)
    manifest["agent"] = {"duration_ms": ag.packets[-1][0] // 1000 + 20, "packets": len(ag.packets)}
    (a.out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    print(json.dumps(manifest))


if __name__ == "__main__":
    main()
