"""Masking through a live relay call, for scripts/masking-report.sh (docs/masking.md).

`tonegate mask IN OUT` runs the relay's tone scrubber over a file. This module runs the relay
itself: it starts `tonegate serve` on 127.0.0.1 (a temp data dir, random tokens, the report's
`mask_replacement`), creates one relay call per input (`POST /v1/calls` with `"mode": "relay"`,
`relay_to` a UDP socket of ours, `"mask_whole_call": true`), sends the input as RTP and writes
what the gateway forwards back to a file of the input's kind, for the same detectors.

    relay = RelayGateway(tonegate, work, "silence").start()   # stopped at exit, even on error
    r = relay.mask("in.wav", "out.wav")     # PCMU (mu-law WAV) or PCMA (A-law WAV), 20 ms packets
    r = relay.mask_capture("in.pcap", "out.pcap")   # each RTP flow of a capture, as captured
    print(r.sent, r.forwarded, latency_line(r.latencies))
    relay.stop()

Why `mask_whole_call` and not a payment session: `tonegate mask` is "a call with masking on
from its first packet to its last", and a call created with `mask_whole_call` is exactly that,
so the two outputs must agree sample for sample and any difference is the live path's. A
session would make masking start mid-stream (the scrubber sees no packet before it), and the
report's inputs are full of key tones that the session would collect as card digits: fields
complete, get rejected, the session fails after its retries and masking stops
`mask_hold_over_ms` later, so what is masked would depend on the input's digits.

Packets: sequence numbers from SEQ0 and timestamps from TS0, both close to their wrap so that
every input longer than 8 s crosses both; one SSRC; marker on the first packet. Pacing is
lockstep by default: each packet is sent when the one before it has come back, which loses
nothing (every packet must come back: counted) and makes each latency one packet's trip
through the gateway with no queue. `pace=0.02` sends on a 20 ms clock instead (real time).
A latency is from just before our `sendto` to just after `recvfrom` returns at the `relay_to`
socket, so it includes two loopback hops and Python's socket calls: `baseline()` measures
those alone (our socket to our socket).

Standard library only. Every socket read and HTTP request has a timeout; the gateway is
killed when the Python process exits (atexit, SIGTERM turned into an exit, and
PR_SET_PDEATHSIG for a Python that is itself killed).
"""

import atexit
import collections
import ctypes
import http.client
import json
import math
import os
import secrets
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time

PCMU, PCMA, EVENT = 0, 8, 101
PACKET = 160  # samples per 20 ms packet at 8 kHz
SEQ0 = 65_000  # wraps after 536 packets (10.7 s)
TS0 = 2**32 - 8 * 8000  # wraps after 8 s; a multiple of 8, so `tone` replacement keeps its phase
SSRC = 0x746F6E65
WAV_MULAW, WAV_ALAW = 7, 6
HOST = "127.0.0.1"


class RelayError(Exception):
    """The gateway could not be started, answered wrongly, or stopped forwarding."""


class Relayed:
    """What one relayed input did: packets sent and forwarded (each sent packet must come back
    once), datagrams we could not match to a packet we sent, forwarded packets whose header
    (sequence number, timestamp, SSRC, payload type, marker, length) differs from the sent one,
    telephone-event packets forwarded, the gateway's scrubbed count for the call
    (`tonegate_rtp_scrubbed_total`), and one latency per forwarded audio packet (ns)."""

    def __init__(self):
        self.calls = 0
        self.sent = 0
        self.audio_sent = 0
        self.forwarded = 0
        self.unmatched = 0
        self.header_changes = 0
        self.events_sent = 0
        self.events_forwarded = 0
        self.scrubbed = None
        self.latencies = []
        self.source = self.destination = None
        self.seconds = 0.0

    @property
    def lost(self):
        """Audio packets sent that never came back."""
        return self.audio_sent - len(self.latencies)

    def describe(self):
        s = "%d/%d audio packets forwarded" % (self.audio_sent - self.lost, self.audio_sent)
        if self.events_sent:
            s += ", %d/%d telephone-event packets forwarded" % (self.events_forwarded, self.events_sent)
        s += ", %s scrubbed" % ("?" if self.scrubbed is None else self.scrubbed)
        if self.unmatched:
            s += ", %d datagrams not sent by us" % self.unmatched
        if self.header_changes:
            s += ", %d headers changed" % self.header_changes
        return s


def read_wav(path):
    """(format tag, 8-bit samples) of a mono 8 kHz mu-law or A-law WAV."""
    b = open(path, "rb").read()
    if b[:4] != b"RIFF" or b[8:12] != b"WAVE":
        raise RelayError("%s: not a WAV file" % path)
    at, fmt, data = 12, None, None
    while at + 8 <= len(b):
        cid, size = b[at:at + 4], struct.unpack("<I", b[at + 4:at + 8])[0]
        body = b[at + 8:at + 8 + size]
        if cid == b"fmt ":
            tag, channels, rate = struct.unpack("<HHI", body[:8])
            bits = struct.unpack("<H", body[14:16])[0]
            if tag == 0xFFFE and len(body) >= 40:
                tag = struct.unpack("<H", body[24:26])[0]
            fmt = (tag, channels, rate, bits)
        elif cid == b"data":
            data = body
        at += 8 + size + (size & 1)
    if fmt is None or data is None:
        raise RelayError("%s: no fmt or data chunk" % path)
    tag, channels, rate, bits = fmt
    if tag not in (WAV_MULAW, WAV_ALAW) or channels != 1 or rate != 8000 or bits != 8:
        raise RelayError("%s: format %d, %d channels, %d Hz, %d bits: the relay path takes mono "
                         "8 kHz mu-law or A-law (sox IN -e u-law OUT)" % (path, tag, channels, rate, bits))
    return tag, data


def write_wav(path, tag, data):
    """A mono 8 kHz WAV of 8-bit G.711 samples (the fixtures' layout: 16-byte fmt, no fact)."""
    fmt = struct.pack("<HHIIHH", tag, 1, 8000, 8000, 1, 8)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", len(data)) + data
    if len(data) & 1:
        body += b"\0"
    with open(path, "wb") as f:
        f.write(b"RIFF" + struct.pack("<I", len(body)) + body)


def rtp(pt, seq, ts, ssrc, payload, marker=False):
    """An RTP packet (RFC 3550): version 2, no padding, extension or CSRC."""
    return struct.pack("!BBHII", 0x80, (0x80 if marker else 0) | pt, seq & 0xFFFF, ts & 0xFFFFFFFF, ssrc) + payload


def rtp_header(d):
    """(payload type, marker, sequence number, timestamp, SSRC, payload offset) of an RTP
    datagram, or None."""
    if len(d) < 12 or d[0] >> 6 != 2:
        return None
    at = 12 + 4 * (d[0] & 0x0F)
    if d[0] & 0x10:
        if len(d) < at + 4:
            return None
        at += 4 + 4 * struct.unpack("!H", d[at + 2:at + 4])[0]
    if len(d) < at:
        return None
    seq, ts, ssrc = struct.unpack("!HII", d[2:12])
    return d[1] & 0x7F, d[1] >> 7, seq, ts, ssrc, at


def read_pcap(path):
    """(link type, [(seconds, fraction, nanosecond?, frame)]) of a classic pcap."""
    b = open(path, "rb").read()
    magic = b[:4]
    order = {b"\xd4\xc3\xb2\xa1": ("<", False), b"\xa1\xb2\xc3\xd4": (">", False),
             b"\x4d\x3c\xb2\xa1": ("<", True), b"\xa1\xb2\x3c\x4d": (">", True)}.get(magic)
    if order is None:
        raise RelayError("%s: not a classic pcap (pcapng is not read here)" % path)
    e, nano = order
    link = struct.unpack(e + "I", b[20:24])[0] & 0x0FFFFFFF
    frames, at = [], 24
    while at + 16 <= len(b):
        sec, frac, incl, _ = struct.unpack(e + "IIII", b[at:at + 16])
        frames.append((sec, frac if nano else frac * 1000, b[at + 16:at + 16 + incl]))
        at += 16 + incl
    return link, frames


def udp_of(link, frame):
    """((source ip, port), (destination ip, port), payload) of an IPv4 UDP frame, or None."""
    if link == 1:  # Ethernet, with any 802.1Q tags
        at, kind = 14, struct.unpack("!H", frame[12:14])[0]
        while kind in (0x8100, 0x88A8) and len(frame) >= at + 4:
            kind, at = struct.unpack("!H", frame[at + 2:at + 4])[0], at + 4
        if kind != 0x0800:
            return None
        ip = frame[at:]
    elif link == 113:  # Linux cooked
        if struct.unpack("!H", frame[14:16])[0] != 0x0800:
            return None
        ip = frame[16:]
    elif link in (101, 228):  # raw IP, IPv4
        ip = frame
    elif link == 0:  # BSD loopback
        ip = frame[4:]
    else:
        return None
    if len(ip) < 20 or ip[0] >> 4 != 4 or ip[9] != 17:
        return None
    ihl = (ip[0] & 0x0F) * 4
    udp = ip[ihl:]
    if len(udp) < 8:
        return None
    sport, dport, length = struct.unpack("!HHH", udp[:6])
    src, dst = socket.inet_ntoa(ip[12:16]), socket.inet_ntoa(ip[16:20])
    return (src, sport), (dst, dport), udp[8:length]


def ipv4_udp(src, dst, payload):
    """An IPv4 packet holding a UDP datagram (header checksum set, UDP checksum 0: none)."""
    udp = struct.pack("!HHHH", src[1], dst[1], 8 + len(payload), 0) + payload
    hdr = bytearray(struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0x4000, 64, 17, 0,
                                socket.inet_aton(src[0]), socket.inet_aton(dst[0])))
    total = sum(struct.unpack("!10H", hdr))
    while total > 0xFFFF:
        total = (total & 0xFFFF) + (total >> 16)
    hdr[10:12] = struct.pack("!H", ~total & 0xFFFF)
    return bytes(hdr) + udp


def write_pcap(path, records):
    """A nanosecond pcap of raw IPv4 packets: records are (seconds, nanoseconds, packet)."""
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B23C4D, 2, 4, 0, 0, 262144, 228))
        for sec, ns, pkt in records:
            f.write(struct.pack("<IIII", sec, ns, len(pkt), len(pkt)) + pkt)


def percentile(sorted_values, p):
    """Nearest-rank percentile of an ascending list."""
    return sorted_values[max(0, math.ceil(p / 100 * len(sorted_values)) - 1)]


def latency_line(ns, short=False):
    """`min/median/p99/max µs (min/median/p99/max) over N packets` of latencies in
    nanoseconds; `short`: the figures and the unit only."""
    if not ns:
        return "no packet"
    v = sorted(ns)
    figures = "%.0f/%.0f/%.0f/%.0f µs" % (v[0] / 1e3, statistics.median(v) / 1e3, percentile(v, 99) / 1e3, v[-1] / 1e3)
    return figures if short else "%s (min/median/p99/max) over %d packets" % (figures, len(v))


def _die_with_parent():
    """In the gateway's process before exec: SIGKILL it when the process that started it dies
    (Linux), so a report killed with SIGKILL leaves no gateway behind."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except Exception:
        pass


class RelayGateway:
    """`tonegate serve` in relay mode on 127.0.0.1, and the calls that relay inputs through it."""

    def __init__(self, tonegate, work, replacement="silence", timeout=2.0):
        self.tonegate = os.path.abspath(tonegate)
        self.work = work
        self.replacement = replacement
        self.timeout = timeout  # longest wait for one forwarded packet, and per HTTP request
        self.proc = None
        self.addr = None
        self.dir = None
        self.log = None
        self.telephony = "tel-" + secrets.token_hex(16)
        self.agent = "agt-" + secrets.token_hex(16)

    # The gateway process.

    def start(self, wait=30.0):
        """Starts the gateway and waits (at most `wait` s) until it answers `/readyz`."""
        self.dir = tempfile.mkdtemp(prefix="relay-serve-", dir=self.work)
        config = os.path.join(self.dir, "serve.yaml")
        with open(os.open(config, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
            json.dump({  # YAML is a superset of JSON
                "listen": HOST + ":0",
                "rtp_ip": HOST,
                "telephony_tokens": [self.telephony],
                "agent_tokens": [self.agent],
                "data_dir": os.path.join(self.dir, "data"),
                "mask_replacement": self.replacement,
                "shutdown_deadline_seconds": 1,
            }, f)
        # Only the kernel choice comes from our environment (`tonegate mask` reads it too);
        # any other TONEGATE_ variable would override the config above.
        env = {k: v for k, v in os.environ.items() if not k.startswith("TONEGATE_") or k == "TONEGATE_INBAND_KERNEL"}
        env["RUST_LOG"] = "info"
        self.log = os.path.join(self.dir, "serve.log")
        log = open(self.log, "wb")
        atexit.register(self.stop)
        if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
            signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
        self.proc = subprocess.Popen([self.tonegate, "serve", "--config", config, "--log-format", "json"],
                                     stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env,
                                     preexec_fn=_die_with_parent)
        log.close()
        deadline = time.monotonic() + wait
        while self.addr is None:
            if self.proc.poll() is not None:
                raise RelayError("tonegate serve exited with %d:\n%s" % (self.proc.returncode, self.log_tail()))
            if time.monotonic() > deadline:
                raise RelayError("tonegate serve did not start within %.0f s:\n%s" % (wait, self.log_tail()))
            for line in open(self.log, errors="replace"):
                try:
                    entry = json.loads(line)
                except ValueError:
                    continue
                if entry.get("fields", {}).get("message") == "tonegate serving":
                    self.addr = entry["fields"]["addr"]
            time.sleep(0.05)
        host, port = self.addr.rsplit(":", 1)
        if host != HOST:
            raise RelayError("the gateway listens on %s, not %s" % (self.addr, HOST))
        self.port = int(port)
        while True:
            try:
                if self._request("GET", "/readyz")[0] == 200:
                    return self
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RelayError("tonegate serve not ready within %.0f s:\n%s" % (wait, self.log_tail()))
            time.sleep(0.05)

    def stop(self, wait=10.0):
        """SIGTERM, then SIGKILL after `wait` s; the exit status (None if it was killed)."""
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        self.proc.terminate()
        try:
            return self.proc.wait(wait)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(wait)
            return None

    def log_tail(self, lines=20):
        try:
            return "".join(open(self.log, errors="replace").readlines()[-lines:])
        except OSError:
            return ""

    def _request(self, method, path, body=None, token=None):
        """(status, JSON body or text) of one HTTP request to the gateway."""
        conn = http.client.HTTPConnection(HOST, self.port, timeout=max(self.timeout, 5.0))
        try:
            headers = {"Content-Type": "application/json"} if body is not None else {}
            if token:
                headers["Authorization"] = "Bearer " + token
            conn.request(method, path, None if body is None else json.dumps(body), headers)
            r = conn.getresponse()
            text = r.read().decode("utf-8", "replace")
            try:
                return r.status, json.loads(text) if text else None
            except ValueError:
                return r.status, text
        finally:
            conn.close()

    def _metric(self, name):
        status, text = self._request("GET", "/metrics")
        if status != 200:
            raise RelayError("/metrics: %d" % status)
        for line in text.splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[0] == name:
                return int(float(parts[1]))
        return 0

    # Relaying.

    def _relay(self, packets, audio_pt, pace=None):
        """Sends `packets` (RTP datagrams of one SSRC) in order through one new relay call: for
        each, the datagram forwarded for it or None; and a Relayed."""
        r = Relayed()
        r.calls = 1
        scrubbed0 = self._metric("tonegate_rtp_scrubbed_total")
        packets0 = self._metric("tonegate_rtp_packets_total")
        leg = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        caller = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        call = None
        try:
            leg.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
            leg.bind((HOST, 0))
            caller.bind((HOST, 0))
            status, answer = self._request("POST", "/v1/calls", {
                "mode": "relay", "relay_to": "%s:%d" % leg.getsockname(), "mask_whole_call": True,
                "codec": "PCMA" if audio_pt == PCMA else "PCMU", "audio_payload_type": audio_pt,
                "event_payload_type": EVENT}, self.telephony)
            if status != 201:
                raise RelayError("POST /v1/calls: %d %s" % (status, answer))
            call = answer["call_id"]
            host, port = answer["rtp"].rsplit(":", 1)
            if host != HOST:
                raise RelayError("the call's RTP address is %s, not on %s" % (answer["rtp"], HOST))
            gateway = r.source = (host, int(port))
            r.destination = leg.getsockname()
            out = [None] * len(packets)
            sent_at = [0] * len(packets)
            waiting = collections.defaultdict(collections.deque)  # (pt, timestamp) -> indexes

            def take(d, src, now):
                """Matches one forwarded datagram to the packet it was sent for."""
                h = rtp_header(d)
                key = h and (h[0], h[3])
                if src != gateway or not waiting.get(key):
                    r.unmatched += 1
                    return
                i = waiting[key].popleft()
                s = rtp_header(packets[i])
                # The relay forwards in order and renumbers past the packets it did not
                # forward, so that the other leg sees a continuous sequence.
                seq = (s[2] - (i - r.forwarded)) & 0xFFFF
                if h[:2] + h[3:5] != s[:2] + s[3:5] or h[2] != seq or len(d) != len(packets[i]):
                    r.header_changes += 1
                out[i] = d
                r.forwarded += 1
                if h[0] == EVENT:
                    r.events_forwarded += 1
                else:
                    r.latencies.append(now - sent_at[i])

            def receive(timeout, until=None):
                """Reads forwarded datagrams until packet `until` has come back (True), or until
                nothing came for `timeout` s (False)."""
                leg.settimeout(timeout)
                while until is None or out[until] is None:
                    try:
                        d, src = leg.recvfrom(4096)
                    except socket.timeout:
                        return False
                    take(d, src, time.perf_counter_ns())
                return True

            t0 = time.perf_counter()
            missed = 0
            for i, d in enumerate(packets):
                if pace:
                    delay = t0 + i * pace - time.perf_counter()
                    if delay > 0:
                        time.sleep(delay)
                h = rtp_header(d)
                waiting[(h[0], h[3])].append(i)
                r.sent += 1
                r.audio_sent += h[0] == audio_pt
                r.events_sent += h[0] == EVENT
                sent_at[i] = time.perf_counter_ns()
                caller.sendto(d, gateway)
                if h[0] != audio_pt:
                    continue  # not waited for: it may be dropped (a telephone-event)
                if receive(self.timeout, i):
                    missed = 0
                    continue
                missed += 1
                if missed >= 3 or self.proc.poll() is not None:
                    raise RelayError("the gateway forwarded nothing for %d packets (%d of %d sent):\n%s"
                                     % (missed, i + 1, len(packets), self.log_tail()))
            if r.forwarded < r.sent:
                # Packets still out (a lost one, events after the last audio packet): whatever
                # comes until 0.3 s of quiet.
                receive(0.3)
            r.seconds = time.perf_counter() - t0
            deadline = time.monotonic() + self.timeout
            while self._metric("tonegate_rtp_packets_total") - packets0 < r.sent and time.monotonic() < deadline:
                time.sleep(0.02)
            r.scrubbed = self._metric("tonegate_rtp_scrubbed_total") - scrubbed0
            return out, r
        finally:
            if call:
                try:
                    self._request("DELETE", "/v1/calls/" + call, token=self.telephony)
                except OSError:
                    pass
            leg.close()
            caller.close()

    def mask(self, src, dst, pace=None, limit=None):
        """Relays a mono 8 kHz mu-law (PCMU) or A-law (PCMA) WAV in 20 ms packets (the last one
        shorter when the file is not a whole number of packets, as `tonegate mask` cuts it)
        and writes what was forwarded to `dst` in the same encoding; a packet that did not come
        back is written as the codec's silence (and counted: Relayed.lost). `limit`: the first
        `limit` packets only."""
        tag, data = read_wav(src)
        pt, silence = (PCMU, b"\xff") if tag == WAV_MULAW else (PCMA, b"\xd5")
        chunks = [data[i:i + PACKET] for i in range(0, len(data), PACKET)][:limit]
        packets = [rtp(pt, SEQ0 + n, TS0 + n * PACKET, SSRC, c, marker=n == 0) for n, c in enumerate(chunks)]
        out, r = self._relay(packets, pt, pace)
        body = b"".join(o[rtp_header(o)[5]:] if o else silence * len(c) for o, c in zip(out, chunks))
        write_wav(dst, tag, body)
        return r

    def mask_capture(self, src, dst):
        """Relays each RTP flow of a capture (UDP source, destination and SSRC carrying PCMU
        or PCMA audio) through a call of its own, every packet of the flow as captured (audio,
        telephone-events, sequence numbers, timestamps) in capture order, and writes the
        forwarded datagrams to a pcap (raw IPv4, from the call's RTP address to our socket)
        with the capture time of the packet each one was sent for."""
        link, frames = read_pcap(src)
        flows = collections.OrderedDict()
        for sec, ns, frame in frames:
            u = udp_of(link, frame)
            h = u and rtp_header(u[2])
            if h and h[0] in (PCMU, PCMA, EVENT):
                flows.setdefault((u[0], u[1], h[4]), []).append((sec, ns, u[2]))
        total, records = Relayed(), []
        for key, items in flows.items():
            # A flow of events only still goes through a call (PCMU), not waited for packet
            # by packet: whatever the gateway forwards of it is kept.
            audio = PCMA if any(rtp_header(d)[0] == PCMA for _, _, d in items) else PCMU
            out, r = self._relay([d for _, _, d in items], audio)
            for (sec, ns, _), o in zip(items, out):
                if o is not None:
                    records.append((sec, ns, ipv4_udp(r.source, r.destination, o)))
            for f in ("calls", "sent", "audio_sent", "forwarded", "unmatched", "header_changes", "events_sent",
                      "events_forwarded", "seconds"):
                setattr(total, f, getattr(total, f) + getattr(r, f))
            total.scrubbed = (total.scrubbed or 0) + r.scrubbed
            total.latencies += r.latencies
        records.sort(key=lambda x: (x[0], x[1]))
        write_pcap(dst, records)
        return total

    def baseline(self, n=2000):
        """Latencies (ns) of `n` datagrams of an RTP packet's size from one of our sockets to
        another on 127.0.0.1, with no gateway between: what every relay latency includes."""
        a = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        b = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            a.bind((HOST, 0))
            b.bind((HOST, 0))
            b.settimeout(self.timeout)
            to, d, ns = b.getsockname(), bytes(172), []
            for _ in range(n):
                t = time.perf_counter_ns()
                a.sendto(d, to)
                b.recvfrom(4096)
                ns.append(time.perf_counter_ns() - t)
            return ns
        finally:
            a.close()
            b.close()
