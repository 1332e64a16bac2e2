#!/usr/bin/env python3
"""Independent check of the pcap fixtures' expected key presses, using tshark's dissection.

    python3 scripts/tshark_presses.py --check [--fixtures DIR]
        For every DIR/*/manifest.toml (default DIR: fixtures/) and every [[fixture]] in it with
        tshark = true (the default), run tshark on the file, aggregate the RFC 4733 events it
        dissects into key presses with the simple logic below, and compare keys (and
        starts_ms / durations_ms within 1 ms where the manifest gives them). Prints a table
        and exits non-zero on any disagreement or tshark failure. Fixtures with expect_error
        are checked too when they say tshark = true (tshark's own error, e.g. for a truncated
        file, is then tolerated: what it dissected before the damage must agree).

    python3 scripts/tshark_presses.py FILE [--event-pt N] [--red-pt N] [-v]
        Print the presses tshark sees in one file (-v: also every event block).

tshark (Debian package `tshark`) is run as
    tshark -r FILE --enable-heuristic rtp_udp -d rtp.pt==EVENT_PT,rtpevent
           [-d rtp.pt==RED_PT,rtp_rfc2198] -T fields -e ...
(Wireshark 4.x has no rtp.heuristic_rtp / rtpevent payload-type preferences any more: the
RTP heuristic is enabled by name and payload types are mapped with Decode As, `-d rtp.pt==N`.)

Aggregation, per SSRC:
  * sequence numbers and RTP timestamps are extended to 64 bits in capture order;
  * event blocks are taken in extended-sequence order (RFC 2198 redundant blocks before the
    primary of their packet, at timestamp - offset); packets are de-duplicated by sequence
    number, redundant blocks by content (timestamp, event, end, duration);
  * blocks with duration 0 are ignored;
  * a new press starts when the event id changes, or when the timestamp changes and either the
    previous press had its end bit or the new timestamp is beyond the previous press's covered
    end + 25 ms (200 samples);
  * within one timestamp a duration that drops by more than half the 16-bit range is taken as
    a 16-bit wrap (buggy senders);
  * a press covers [first timestamp, max(timestamp + duration)]; start_ms = capture time of
    the SSRC's first packet + (press start - RTP timestamp of that packet) / 8 kHz.
Presses of all SSRCs are sorted by start; event ids 0-15 are keys 0-9 * # A-D, others are
not keys (they still separate presses).
"""

from __future__ import annotations

import argparse
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

CLOCK = 8000
KEYS = "0123456789*#ABCD"
FIELDS = [
    "frame.number", "frame.time_relative", "rtp.ssrc", "rtp.seq", "rtp.timestamp", "rtp.p_type",
    "rtp.timestamp-offset", "rtpevent.event_id", "rtpevent.end_of_event", "rtpevent.duration",
    "rtpevent.volume",
]
TOL_MS = 1.0


@dataclass
class Block:
    extseq: int
    idx: int          # position in the packet: redundant blocks first, primary last
    redundant: bool
    ts: int           # extended RTP timestamp of the block
    event: int
    end: bool
    duration: int
    volume: int
    frame: int


@dataclass
class Press:
    ssrc: int
    event: int
    start: int        # extended timestamp
    end: int          # covered end, extended timestamp
    ended: bool
    start_ms: float = 0.0

    @property
    def key(self) -> str:
        return KEYS[self.event] if self.event < 16 else ""

    @property
    def duration_ms(self) -> float:
        return (self.end - self.start) * 1000 / CLOCK


class TsharkError(Exception):
    pass


def tshark_cmd(path: Path, event_pt: int, red_pt: int | None) -> list[str]:
    cmd = ["tshark", "-n", "-r", str(path), "--enable-heuristic", "rtp_udp",
           "-d", f"rtp.pt=={event_pt},rtpevent"]
    if red_pt is not None:
        cmd += ["-d", f"rtp.pt=={red_pt},rtp_rfc2198"]
    cmd += ["-T", "fields", "-E", "separator=/t", "-E", "occurrence=a", "-E", "aggregator=,"]
    for f in FIELDS:
        cmd += ["-e", f]
    return cmd


def ext(prev: int | None, v: int, bits: int) -> int:
    if prev is None:
        return v
    m = 1 << bits
    d = (v - prev) % m
    if d >= m // 2:
        d -= m
    return prev + d


def run_tshark(path: Path, event_pt: int, red_pt: int | None, tolerate_error: bool = False):
    cmd = tshark_cmd(path, event_pt, red_pt)
    r = subprocess.run(cmd, capture_output=True, text=True)
    err = "\n".join(l for l in r.stderr.splitlines() if "Running as user" not in l).strip()
    if r.returncode != 0 and not tolerate_error:
        raise TsharkError(f"{shlex.join(cmd)}: exit {r.returncode}: {err}")
    return r.stdout, err


def parse(out: str, event_pt: int):
    """Return (first-packet info per SSRC, event blocks per SSRC)."""
    first: dict[int, tuple[float, int]] = {}       # ssrc -> (time_relative, extended ts)
    last_seq: dict[int, int] = {}
    last_ts: dict[int, int] = {}
    blocks: dict[int, list[Block]] = {}
    for line in out.splitlines():
        c = line.split("\t")
        c += [""] * (len(FIELDS) - len(c))
        frame, trel, ssrc, seq, ts, pts, offs, evs, ends, durs, vols = c[:len(FIELDS)]
        if not ssrc or not seq or not ts:
            continue
        ssrc_i = int(ssrc.split(",")[0], 0)
        seq_x = ext(last_seq.get(ssrc_i), int(seq.split(",")[0]), 16)
        ts_x = ext(last_ts.get(ssrc_i), int(ts.split(",")[0]), 32)
        last_seq[ssrc_i], last_ts[ssrc_i] = seq_x, ts_x
        if ssrc_i not in first:
            first[ssrc_i] = (float(trel), ts_x)
        if not evs:
            continue
        ev = [int(x) for x in evs.split(",")]
        en = [x in ("1", "True") for x in ends.split(",")]
        du = [int(x) for x in durs.split(",")]
        vo = [int(x) for x in vols.split(",")] if vols else [0] * len(ev)
        off = [int(x) for x in offs.split(",")] if offs else []
        pt_list = [int(x) for x in pts.split(",")]
        nred = len(off)
        # RED: p_type occurrences are [packet PT, block PTs..., primary PT]; a plain packet
        # has one PT, which must be the event PT.
        if nred == 0 and pt_list[0] != event_pt and len(pt_list) == 1:
            continue
        if len(ev) != nred + 1:
            # e.g. a RED packet whose primary is not an event: keep only event blocks we can place
            if len(ev) == nred:
                off = off[:len(ev)]
            else:
                raise TsharkError(f"frame {frame}: {len(ev)} event blocks for {nred} redundant headers")
        for i in range(len(ev)):
            red = i < nred
            bts = ts_x - (off[i] if red else 0)
            blocks.setdefault(ssrc_i, []).append(
                Block(seq_x, i, red, bts, ev[i], en[i], du[i], vo[i], int(frame)))
    return first, blocks


def aggregate(first, blocks, verbose=False) -> list[Press]:
    presses: list[Press] = []
    for ssrc, bl in blocks.items():
        bl.sort(key=lambda b: (b.extseq, b.idx))
        seen_seq: set[int] = set()
        seen_content: set[tuple] = set()
        cur: Press | None = None
        cur_ts = None
        wrap = 0
        last_dur = 0
        for b in bl:
            content = (b.ts, b.event, b.end, b.duration)
            if b.redundant:
                if content in seen_content:
                    continue
            else:
                if b.extseq in seen_seq:
                    continue
                seen_seq.add(b.extseq)
            seen_content.add(content)
            if verbose:
                print(f"  frame {b.frame:5d} ssrc {ssrc:#010x} seq {b.extseq:6d}{' red' if b.redundant else '    '}"
                      f" ts {b.ts:11d} ev {b.event:3d} end {int(b.end)} dur {b.duration:5d} vol {b.volume}")
            if b.duration == 0:
                continue
            new = (cur is None or b.event != cur.event
                   or (b.ts != cur_ts and (cur.ended or b.ts > cur.end + 200)))
            if new:
                cur = Press(ssrc, b.event, b.ts, b.ts + b.duration, b.end)
                presses.append(cur)
                cur_ts, wrap, last_dur = b.ts, 0, b.duration
                continue
            if b.ts != cur_ts:
                cur_ts, wrap = b.ts, 0
                last_dur = b.duration
            else:
                d = b.duration + wrap
                while d < last_dur - 0x8000:
                    wrap += 0x10000
                    d += 0x10000
                last_dur = max(last_dur, d)
            cur.end = max(cur.end, b.ts + b.duration + wrap)
            cur.ended = cur.ended or b.end
    for p in presses:
        t0, ts0 = first[p.ssrc]
        p.start_ms = t0 * 1000 + (p.start - ts0) * 1000 / CLOCK
    presses.sort(key=lambda p: p.start_ms)
    return presses


def presses_of(path: Path, event_pt: int = 101, red_pt: int | None = None, tolerate_error=False, verbose=False):
    out, err = run_tshark(path, event_pt, red_pt, tolerate_error)
    first, blocks = parse(out, event_pt)
    return aggregate(first, blocks, verbose), err


def replay_args(args: list[str]):
    ap = argparse.ArgumentParser(add_help=False)
    ap.add_argument("--event-pt", type=int, default=101)
    ap.add_argument("--red-pt", type=int, default=None)
    ns, _ = ap.parse_known_args(args)
    return ns.event_pt, ns.red_pt


def close(a: list[float], b: list[float]) -> bool:
    return len(a) == len(b) and all(abs(x - y) <= TOL_MS for x, y in zip(a, b))


def fmt_list(xs) -> str:
    return "[" + ", ".join(f"{x:g}" for x in xs) + "]"


def check(root: Path) -> int:
    manifests = sorted(root.glob("*/manifest.toml"))
    if not manifests:
        print(f"no manifests under {root}", file=sys.stderr)
        return 2
    rows = []
    failures = 0
    for m in manifests:
        data = tomllib.loads(m.read_text())
        for fx in data.get("fixture", []):
            name = f"{m.parent.name}/{fx['file']}"
            want = fx.get("keys", "")
            if not fx.get("tshark", True):
                rows.append((name, want, "-", "skip: " + fx.get("tshark_why", "")))
                continue
            event_pt, red_pt = replay_args(fx.get("args", []))
            expect_error = fx.get("expect_error", "")
            try:
                presses, err = presses_of(m.parent / fx["file"], event_pt, red_pt, tolerate_error=bool(expect_error))
            except (TsharkError, OSError, ValueError) as e:
                rows.append((name, want, "ERROR", f"FAIL: {e}"))
                failures += 1
                continue
            keyp = [p for p in presses if p.key]
            got = "".join(p.key for p in keyp)
            problems = []
            if got != want:
                problems.append("keys")
            if "starts_ms" in fx and not close([p.start_ms for p in keyp], fx["starts_ms"]):
                problems.append(f"starts {fmt_list(p.start_ms for p in keyp)} != {fmt_list(fx['starts_ms'])}")
            if "durations_ms" in fx and not close([p.duration_ms for p in keyp], fx["durations_ms"]):
                problems.append(f"durations {fmt_list(p.duration_ms for p in keyp)} != {fmt_list(fx['durations_ms'])}")
            if problems:
                failures += 1
                rows.append((name, want, got, "FAIL: " + "; ".join(problems)))
            else:
                extra = []
                if "starts_ms" in fx:
                    extra.append("starts")
                if "durations_ms" in fx:
                    extra.append("durations")
                if expect_error and err:
                    extra.append("tshark said: " + re.sub(r'The file "[^"]*"', "the file", err.splitlines()[0].removeprefix("tshark: "))[:70])
                rows.append((name, want, got, "ok" + (" (" + ", ".join(extra) + ")" if extra else "")))
    w = [max(len(r[i]) for r in rows + [("fixture", "manifest", "tshark", "ok")]) for i in range(3)]
    print(f"{'fixture':<{w[0]}} | {'manifest':<{w[1]}} | {'tshark':<{w[2]}} | ok")
    print(f"{'-' * w[0]}-+-{'-' * w[1]}-+-{'-' * w[2]}-+---")
    for r in rows:
        print(f"{r[0]:<{w[0]}} | {r[1]:<{w[1]}} | {r[2]:<{w[2]}} | {r[3]}")
    checked = sum(1 for r in rows if not r[3].startswith("skip"))
    print(f"\n{checked - failures} passed, {failures} failed, {len(rows) - checked} skipped")
    return 1 if failures else 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="tshark's view of RFC 4733 key presses in pcap fixtures")
    ap.add_argument("file", nargs="?", type=Path, help="one capture to show")
    ap.add_argument("--check", action="store_true", help="check every fixtures/*/manifest.toml")
    ap.add_argument("--fixtures", type=Path, default=Path(__file__).resolve().parent.parent / "fixtures")
    ap.add_argument("--event-pt", type=int, default=101)
    ap.add_argument("--red-pt", type=int, default=None)
    ap.add_argument("-v", "--verbose", action="store_true")
    a = ap.parse_args(argv)
    if a.check == (a.file is not None):
        ap.error("give either --check or one FILE")
    if shutil.which("tshark") is None:
        print("tshark not found: apt-get install -y tshark", file=sys.stderr)
        return 2
    if a.check:
        return check(a.fixtures)
    try:
        presses, err = presses_of(a.file, a.event_pt, a.red_pt, tolerate_error=True, verbose=a.verbose)
    except TsharkError as e:
        print(e, file=sys.stderr)
        return 1
    if err:
        print(err, file=sys.stderr)
    print(f"{'ssrc':<10}  {'event':>5}  {'key':>3}  {'start_ms':>10}  {'duration_ms':>11}  end")
    for p in presses:
        print(f"{p.ssrc:#010x}  {p.event:5d}  {p.key or '-':>3}  {p.start_ms:10.3f}  {p.duration_ms:11.3f}  {'E' if p.ended else '-'}")
    print("keys: " + "".join(p.key for p in presses))
    return 0


if __name__ == "__main__":
    sys.exit(main())
