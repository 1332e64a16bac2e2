#!/usr/bin/env python3
"""A small client for rtpengine's ng control protocol (UDP: cookie, space, bencoded
dictionary), for scripts/sip-e2e.sh: the same requests reach rtpengine or tonegate.

    python3 tools/sip/ng.py HOST:PORT ping
    python3 tools/sip/ng.py HOST:PORT list
    python3 tools/sip/ng.py HOST:PORT query CALL-ID
    python3 tools/sip/ng.py HOST:PORT wait-ping SECONDS     # until it answers pong
    python3 tools/sip/ng.py extract CAPTURE NG_PORT OUT_DIR  # ng datagrams of a capture

Requests and answers print as one JSON object per line (byte strings decoded as UTF-8 where
they are). `extract` writes every ng datagram of a capture (tshark reads it) as
NNN-request-COMMAND.bin / NNN-reply-COMMAND.bin, cookie included, exactly as on the wire,
and prints them decoded.

Only Python's standard library.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time


def bencode(value) -> bytes:
    if isinstance(value, bool):
        value = int(value)
    if isinstance(value, int):
        return b"i%de" % value
    if isinstance(value, str):
        value = value.encode()
    if isinstance(value, (bytes, bytearray)):
        return b"%d:%s" % (len(value), bytes(value))
    if isinstance(value, (list, tuple)):
        return b"l" + b"".join(bencode(v) for v in value) + b"e"
    if isinstance(value, dict):
        items = sorted((k.encode() if isinstance(k, str) else k, v) for k, v in value.items())
        return b"d" + b"".join(bencode(k) + bencode(v) for k, v in items) + b"e"
    raise TypeError(f"cannot bencode {type(value).__name__}")


def bdecode(data: bytes):
    value, end = _decode(data, 0)
    if end != len(data):
        raise ValueError(f"{len(data) - end} bytes after the bencoded value")
    return value


def _decode(data: bytes, i: int):
    c = data[i : i + 1]
    if c == b"i":
        end = data.index(b"e", i)
        return int(data[i + 1 : end]), end + 1
    if c == b"l":
        out, i = [], i + 1
        while data[i : i + 1] != b"e":
            v, i = _decode(data, i)
            out.append(v)
        return out, i + 1
    if c == b"d":
        out, i = {}, i + 1
        while data[i : i + 1] != b"e":
            k, i = _decode(data, i)
            v, i = _decode(data, i)
            out[k] = v
        return out, i + 1
    if c.isdigit():
        colon = data.index(b":", i)
        n = int(data[i:colon])
        return data[colon + 1 : colon + 1 + n], colon + 1 + n
    raise ValueError(f"not bencode at byte {i}: {data[i:i + 10]!r}")


def readable(value):
    """Bytes to str where they are UTF-8, recursively, for printing as JSON."""
    if isinstance(value, bytes):
        try:
            return value.decode()
        except UnicodeDecodeError:
            return value.hex()
    if isinstance(value, list):
        return [readable(v) for v in value]
    if isinstance(value, dict):
        return {readable(k): readable(v) for k, v in value.items()}
    return value


def split(datagram: bytes) -> tuple[bytes, object]:
    cookie, _, body = datagram.partition(b" ")
    return cookie, bdecode(body)


def request(addr: tuple[str, int], message: dict, timeout: float = 1.0) -> dict:
    cookie = b"e2e%d_%d" % (os.getpid(), time.monotonic_ns() % 10**9)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        s.sendto(cookie + b" " + bencode(message), addr)
        while True:
            data, _ = s.recvfrom(65535)
            got, answer = split(data)
            if got == cookie:
                return readable(answer)


def extract(capture: str, port: int, out_dir: str) -> None:
    fields = subprocess.run(
        ["tshark", "-r", capture, "-Y", f"udp.port == {port}", "-T", "fields",
         "-e", "frame.time_epoch", "-e", "udp.dstport", "-e", "udp.payload"],
        check=True, capture_output=True, text=True,
    ).stdout
    os.makedirs(out_dir, exist_ok=True)
    commands: dict[bytes, str] = {}
    for n, line in enumerate(l for l in fields.splitlines() if l.strip()):
        at, dst, payload = line.split("\t")
        data = bytes.fromhex(payload.replace(":", ""))
        cookie, body = split(data)
        if int(dst) == port:
            kind, command = "request", readable(body.get(b"command", b"?"))
            commands[cookie] = command
        else:
            kind, command = "reply", commands.get(cookie, "unknown")
        name = f"{n:03d}-{kind}-{command.replace(' ', '_')}.bin"
        with open(os.path.join(out_dir, name), "wb") as f:
            f.write(data)
        print(json.dumps({"file": name, "cookie": cookie.decode(errors="replace"),
                          kind: readable(body), f"{kind}_at": float(at)}))


def main(argv: list[str]) -> int:
    if len(argv) >= 4 and argv[0] == "extract":
        extract(argv[1], int(argv[2]), argv[3])
        return 0
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    host, _, port = argv[0].rpartition(":")
    addr = (host, int(port))
    command = argv[1]
    if command == "wait-ping":
        deadline = time.monotonic() + float(argv[2])
        while time.monotonic() < deadline:
            try:
                if request(addr, {"command": "ping"}, 0.3).get("result") == "pong":
                    return 0
            except (OSError, ValueError):
                time.sleep(0.1)
        print(f"no pong from {argv[0]} in {argv[2]} s", file=sys.stderr)
        return 1
    message: dict = {"command": command}
    if command == "query":
        message["call-id"] = argv[2]
    try:
        print(json.dumps(request(addr, message, 2.0)))
    except OSError as e:
        print(json.dumps({"result": "error", "error-reason": f"no answer: {e}"}))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
