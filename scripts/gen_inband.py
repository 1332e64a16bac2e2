#!/usr/bin/env python3
"""Generate the in-band DTMF conformance WAVs under fixtures/inband/ (ITU-T Q.24, AT&T column)
with their manifest. Reproducible: every file has its own fixed seed; Python's `random` is
stable across versions for random() and gauss().

    python3 scripts/gen_inband.py [--out DIR]      (default: fixtures/)

Each file holds the sixteen keys (or pairs, or repeats) as G.711 mu-law (WAV format tag 7,
8 kHz mono), because that is how tones reach a gateway in a G.711 call: the detector and
spandsp both hear the mu-law round trip. Levels are per tone in dBm0, with a full-scale
16-bit sine at +3.14 dBm0 (the G.711 overload point). Each tone starts 0-79 samples into
its slot at random, so every alignment with a detector's blocks is met; tone phases are random.
"""
import argparse
import math
import os
import random
import struct

RATE = 8000
KEYS = "123A456B789C*0#D"
LOW = [697.0, 770.0, 852.0, 941.0]
HIGH = [1209.0, 1336.0, 1477.0, 1633.0]


def amplitude(dbm0):
    return 32767.0 * 10 ** ((dbm0 - 3.14) / 20.0)


def ulaw(sample):
    """G.711 mu-law encoder (bias 0x84, clip 32635), as crates/media/src/g711.rs."""
    s = int(round(sample))
    s = max(-32768, min(32767, s))
    sign = 0
    if s < 0:
        s = -s
        sign = 0x80
    s = min(s, 32635) + 0x84
    exponent = max(0, min(7, s.bit_length() - 1 - 7))
    mantissa = (s >> (exponent + 3)) & 0x0F
    return (~(sign | (exponent << 4) | mantissa)) & 0xFF


def wav_ulaw(samples):
    body = bytes(ulaw(x) for x in samples)
    fmt = struct.pack("<HHIIHH", 7, 1, RATE, RATE, 1, 8)
    return (b"RIFF" + struct.pack("<I", 4 + 8 + len(fmt) + 8 + len(body)) + b"WAVE"
            + b"fmt " + struct.pack("<I", len(fmt)) + fmt
            + b"data" + struct.pack("<I", len(body)) + body)


def tone(audio, at, key, rng, ms=60.0, low_db=-10.0, high_db=-10.0, low_f=1.0, high_f=1.0):
    i = KEYS.index(key)
    fl, fh = LOW[i // 4] * low_f, HIGH[i % 4] * high_f
    pl, ph = rng.random() * 2 * math.pi, rng.random() * 2 * math.pi
    al, ah = amplitude(low_db), amplitude(high_db)
    for n in range(int(round(ms * RATE / 1000))):
        t = n / RATE
        audio[at + n] += al * math.sin(2 * math.pi * fl * t + pl) + ah * math.sin(2 * math.pi * fh * t + ph)


def sequence(keys, rng, gap_ms=90.0, ms=60.0, **kw):
    slot = int((ms + gap_ms) * RATE / 1000) + 80
    audio = [0.0] * (800 + slot * len(keys) + 1600)
    for j, key in enumerate(keys):
        tone(audio, 800 + j * slot + int(rng.random() * 80), key, rng, ms=ms, **kw)
    return audio


def rows():
    """(file, condition, requirement, expected keys, builder(rng) -> audio)"""
    out = [("nominal.wav", "nominal: -10 dBm0 per tone, 60 ms", "accept", KEYS,
            lambda r: sequence(KEYS, r))]
    for group, key in (("low", "low_f"), ("high", "high_f")):
        for pct in (1.5, -1.5, 3.5, -3.5):
            verb = "accept" if abs(pct) < 2 else "reject"
            name = f"offset-{group}-{'plus' if pct > 0 else 'minus'}-{abs(pct)}.wav"
            out.append((name, f"{group} group {pct:+.1f} %", f"{verb} (Q.24: accept ±1.5 %, reject ±3.5 %)",
                        KEYS if verb == "accept" else "",
                        lambda r, k=key, p=pct: sequence(KEYS, r, **{k: 1 + p / 100})))
    out += [
        ("twist-reverse-4db.wav", "twist: high group 4 dB above low", "accept",
         KEYS, lambda r: sequence(KEYS, r, low_db=-14.0, high_db=-10.0)),
        ("twist-standard-8db.wav", "twist: high group 8 dB below low", "accept",
         KEYS, lambda r: sequence(KEYS, r, low_db=-8.0, high_db=-16.0)),
        ("level-minus-3.wav", "level -3 dBm0 per tone", "accept",
         KEYS, lambda r: sequence(KEYS, r, low_db=-3.0, high_db=-3.0)),
        ("level-minus-36.wav", "level -36 dBm0 per tone", "accept",
         KEYS, lambda r: sequence(KEYS, r, low_db=-36.0, high_db=-36.0)),
        ("level-minus-55.wav", "level -55 dBm0 per tone", "reject",
         "", lambda r: sequence(KEYS, r, low_db=-55.0, high_db=-55.0)),
        ("duration-40ms.wav", "tone 40 ms", "accept",
         KEYS, lambda r: sequence(KEYS, r, ms=40.0)),
        ("duration-23ms.wav", "tone 23 ms", "reject",
         "", lambda r: sequence(KEYS, r, ms=23.0)),
        ("pause-40ms.wav", "same key twice, 40 ms pause", "two presses each",
         "".join(k + k for k in KEYS), pause_pairs),
        ("interruption-10ms.wav", "10 ms break inside a 120 ms tone", "one press each",
         KEYS, interruptions),
        ("noise-12db.wav", "white noise, 12 dB SNR per tone (3 x 16 keys)", "100 % detected",
         KEYS * 3, noisy),
        ("dial-tone.wav", "dial tone 350+440 Hz at the DTMF level", "100 % detected",
         KEYS, dial_tone),
    ]
    return out


def pause_pairs(rng):
    slot = int(0.30 * RATE)
    audio = [0.0] * (800 + slot * len(KEYS) + 1600)
    for j, key in enumerate(KEYS):
        at = 800 + j * slot + int(rng.random() * 80)
        tone(audio, at, key, rng, ms=60.0)
        tone(audio, at + int(0.100 * RATE), key, rng, ms=60.0)  # 60 ms on, 40 ms off
    return audio


def interruptions(rng):
    slot = int(0.25 * RATE)
    audio = [0.0] * (800 + slot * len(KEYS) + 1600)
    for j, key in enumerate(KEYS):
        at = 800 + j * slot + int(rng.random() * 80)
        tone(audio, at, key, rng, ms=55.0)
        tone(audio, at + int(0.065 * RATE), key, rng, ms=55.0)  # 10 ms break
    return audio


def noisy(rng):
    audio = sequence(KEYS * 3, rng)
    sigma = amplitude(-10.0 - 12.0) / math.sqrt(2)  # noise power 12 dB below one tone's
    return [x + rng.gauss(0.0, sigma) for x in audio]


def dial_tone(rng):
    audio = sequence(KEYS, rng)
    a = amplitude(-10.0)
    return [x + a * (math.sin(2 * math.pi * 350 * n / RATE) + math.sin(2 * math.pi * 440 * n / RATE))
            for n, x in enumerate(audio)]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "fixtures"))
    out = os.path.join(ap.parse_args().out, "inband")
    os.makedirs(out, exist_ok=True)
    lines = [
        "# Generated by scripts/gen_inband.py -- do not edit by hand; edit the script and rerun it.",
        "#",
        "# One [[fixture]] per WAV (8 kHz mono G.711 mu-law), one ITU-T Q.24 (AT&T) row each:",
        "#   file         the WAV, relative to this directory",
        "#   condition    what the audio holds",
        "#   requirement  what a conforming detector does",
        "#   keys         the exact key sequence a conforming detector reports (\"\" = none)",
        "#   tshark       false: tshark decodes RFC 4733 events, these are tones (scripts/tshark_presses.py)",
        "# `tonegate conformance` runs them all, and spandsp beside it when its harness is built.",
        "",
    ]
    for seed, (name, condition, requirement, keys, build) in enumerate(rows(), start=600):
        rng = random.Random(seed)
        with open(os.path.join(out, name), "wb") as f:
            f.write(wav_ulaw(build(rng)))
        lines += ["[[fixture]]", f'file = "{name}"', f'condition = "{condition}"',
                  f'requirement = "{requirement}"', f'keys = "{keys}"',
                  'tshark = false', 'tshark_why = "in-band tones in a WAV; checked by tonegate conformance"', ""]
        print(f"{name}: {condition} -> {keys or 'none'}")
    with open(os.path.join(out, "manifest.toml"), "w") as f:
        f.write("\n".join(lines))


if __name__ == "__main__":
    main()
