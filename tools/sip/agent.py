#!/usr/bin/env python3
"""The customer's endpoints and the voice agent, for scripts/sip-e2e.sh's tonegate mode.

    python3 tools/sip/agent.py customer PORT LOG
        Serves the start, success and failure connections of the function file the script
        writes, on 127.0.0.1:PORT: /start answers an order of 42.00 USD that needs a postal
        code (as `tonegate demo`'s stand-in), and every request body is appended to LOG as
        one JSON line {"path", "body"}.

    python3 tools/sip/agent.py pay --api URL --token TOKEN --sip-call-id ID --out FILE
                                   [--timeout SECONDS]
        Finds the call tonegate created over ng by its SIP Call-ID (GET
        /v1/calls/by-sip-call-id/{sip_call_id}; --call-id skips it), starts `collect_payment`
        on it, confirms the amount as soon as it is asked, confirms the card when the masked
        summary is read, and writes what it saw to FILE (JSON: the call, the session, every
        state in order, the final session). Exits 0 when the session succeeded.

Only Python's standard library.
"""

from __future__ import annotations

import argparse
import http.server
import json
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

START = {
    "amount": 4200,
    "currency": "USD",
    "description": "Order #10482",
    "processor_parameters": {"invoice_id": "INV-10482", "is_postal_code_required": True},
}

# The agent API route that finds a call created over ng by its SIP Call-ID.
# As the `ng` branch serves it (commit 602730c): 200 {"call_id", "sip_call_id"}, 404 until the
# offer reached tonegate and after the delete. --call-route overrides the route.
DEFAULT_CALL_ROUTE = "/v1/calls/by-sip-call-id/{sip_call_id}"

TERMINAL = {"succeeded", "failed", "cancelled"}


def customer(port: int, log: str) -> None:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 (http.server's name)
            length = int(self.headers.get("Content-Length", 0))
            raw = self.rfile.read(length)
            try:
                body = json.loads(raw or b"null")
            except ValueError:
                body = raw.decode(errors="replace")
            with open(log, "a") as f:
                f.write(json.dumps({"path": self.path, "body": body}) + "\n")
            answer = START if self.path == "/start" else {"ok": True}
            data = json.dumps(answer).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()


class Api:
    def __init__(self, base: str, token: str):
        self.base, self.token = base.rstrip("/"), token

    def call(self, method: str, path: str, body=None) -> tuple[int, object]:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data, method=method)
        req.add_header("Authorization", f"Bearer {self.token}")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=5) as r:
                return r.status, json.loads(r.read() or b"null")
        except urllib.error.HTTPError as e:
            raw = e.read()
            try:
                return e.code, json.loads(raw or b"null")
            except ValueError:
                return e.code, raw.decode(errors="replace")


def pay(a: argparse.Namespace) -> int:
    api = Api(a.api, a.token)
    deadline = time.monotonic() + a.timeout
    seen: dict = {"sip_call_id": a.sip_call_id, "states": [], "actions": []}

    def done(code: int, why: str) -> int:
        seen["result"] = why
        with open(a.out, "w") as f:
            json.dump(seen, f, indent=2)
        print(f"agent: {why}", file=sys.stderr)
        return code

    route = a.call_route.format(sip_call_id=urllib.parse.quote(a.sip_call_id, safe=""))
    call_id = a.call_id
    while call_id is None and time.monotonic() < deadline:
        status, answer = api.call("GET", route)
        seen["lookup"] = {"route": route, "status": status, "answer": answer}
        if status == 200 and isinstance(answer, dict) and answer.get("call_id"):
            call_id = answer["call_id"]
            break
        time.sleep(0.1)
    if call_id is None:
        return done(1, f"no call for SIP Call-ID {a.sip_call_id} at {route}: {seen.get('lookup')}")
    seen["call_id"] = call_id

    status, answer = api.call(
        "POST",
        f"/v1/calls/{call_id}/sessions",
        {"function": "collect_payment", "vars": {"order_id": "10482"}, "refs": {"email": "caller@example.com"}},
    )
    seen["session_start"] = {"status": status, "answer": answer}
    if status != 201:
        return done(1, f"starting the session answered {status}: {answer}")
    session = answer["session_reference_id"]
    seen["session"] = session
    seen["session_started_at"] = time.time()

    acted = set()
    last = None
    while time.monotonic() < deadline:
        status, state = api.call("GET", f"/v1/sessions/{session}")
        if status != 200:
            return done(1, f"GET /v1/sessions/{session} answered {status}: {state}")
        name = state.get("state")
        if name != last:
            seen["states"].append({"state": name, "at": time.time()})
            last = name
        action = {
            "awaiting_amount_confirmation": "confirm_amount",
            "awaiting_card_confirmation": "confirm_card",
        }.get(name)
        if action and action not in acted:
            acted.add(action)
            code, answer = api.call("POST", f"/v1/sessions/{session}/actions", {"action": action})
            seen["actions"].append({"action": action, "status": code, "answer": answer, "at": time.time()})
        if name in TERMINAL:
            seen["final"] = state
            seen["session_ended_at"] = time.time()
            if name == "succeeded":
                return done(0, f"session {session} succeeded")
            return done(1, f"session {session} ended {name}: {state.get('failed_reason')}")
        time.sleep(0.05)
    return done(1, f"session {session} still {last} after {a.timeout} s")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="what", required=True)
    c = sub.add_parser("customer")
    c.add_argument("port", type=int)
    c.add_argument("log")
    y = sub.add_parser("pay")
    y.add_argument("--api", required=True)
    y.add_argument("--token", required=True)
    y.add_argument("--sip-call-id", required=True)
    y.add_argument("--out", required=True)
    y.add_argument("--timeout", type=float, default=30.0)
    y.add_argument("--call-route", default=DEFAULT_CALL_ROUTE)
    y.add_argument("--call-id", help="tonegate's id of the call: skips the lookup by SIP Call-ID")
    a = p.parse_args()
    if a.what == "customer":
        customer(a.port, a.log)
        return 0
    return pay(a)


if __name__ == "__main__":
    sys.exit(main())
