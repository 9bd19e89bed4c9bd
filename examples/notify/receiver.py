"""A notification receiver: verifies Ordinaut's signature, drops repeats, keeps what it accepted.

    python examples/notify/receiver.py --port 8766 --secret "$SECRET"

Ordinaut POSTs a task's run outcomes to the URLs in its ``payload.notify``, each signed with
HMAC-SHA256 under a secret the agent stored (``PUT /secrets/NAME``)::

    Ordinaut-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<raw body>">
    Ordinaut-Delivery: <delivery id, the same on every retry of one delivery>

This receiver uses the standard library only, so it can be copied into any service. It
answers 401 to a request whose signature is wrong or older than five minutes (replays), 200
to a good one, and 200 without acting again to a delivery id it has seen (Ordinaut retries a
delivery until it gets a 2xx, so a receiver must be idempotent). ``GET /deliveries`` lists
what it accepted; ``GET /rejected`` counts what it refused.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

TOLERANCE_S = 300


def verify(
    secret: str, header: str, body: bytes, *, now: float, tolerance_s: int = TOLERANCE_S
) -> bool:
    """True when ``header`` is a valid ``Ordinaut-Signature`` of ``body`` under ``secret``.

    Sign ``"<t>.<body>"`` with the secret, compare in constant time with every ``v1`` given,
    and refuse a ``t`` further than ``tolerance_s`` from now (a captured request replayed later).
    """
    timestamp: int | None = None
    candidates: list[str] = []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t" and value.isdigit():
            timestamp = int(value)
        elif key == "v1":
            candidates.append(value)
    if timestamp is None or abs(now - timestamp) > tolerance_s:
        return False
    signed = f"{timestamp}.".encode() + body
    expected = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    return any(hmac.compare_digest(expected, c) for c in candidates)


class Receiver(ThreadingHTTPServer):
    """The server: its secret, what it accepted (by delivery id) and how many it refused."""

    def __init__(self, address: tuple[str, int], secret: str, *, quiet: bool = False) -> None:
        super().__init__(address, Handler)
        self.secret = secret
        self.quiet = quiet
        self.deliveries: dict[str, dict[str, Any]] = {}
        self.rejected = 0
        self.lock = threading.Lock()

    def say(self, line: str) -> None:
        if not self.quiet:
            print(line, flush=True)


class Handler(BaseHTTPRequestHandler):
    server: Receiver

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _answer(self, status: int, value: Any) -> None:
        data = json.dumps(value).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        with self.server.lock:
            if self.path == "/deliveries":
                self._answer(200, list(self.server.deliveries.values()))
            elif self.path == "/rejected":
                self._answer(200, {"rejected": self.server.rejected})
            else:
                self._answer(404, {"error": "not found"})

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        header = self.headers.get("Ordinaut-Signature", "")
        if not verify(self.server.secret, header, body, now=time.time()):
            with self.server.lock:
                self.server.rejected += 1
            self.server.say("rejected a request: bad or missing Ordinaut-Signature")
            self._answer(401, {"error": "bad signature"})
            return
        delivery = self.headers.get("Ordinaut-Delivery", "")
        event = json.loads(body)
        with self.server.lock:
            seen = delivery in self.server.deliveries
            if not seen:
                self.server.deliveries[delivery] = event
        if seen:
            self._answer(200, {"duplicate": True})  # a retry of one already handled
            return
        run = event["run"]
        self.server.say(
            f"verified {event['type']}: task {event['task']['title']!r}, run {run['id']} "
            f"attempt {run['attempt']} ({run['url']})"
        )
        self._answer(200, {"ok": True})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8766)
    parser.add_argument("--secret", required=True, help="the value stored with PUT /secrets/NAME")
    args = parser.parse_args(argv)
    server = Receiver((args.host, args.port), args.secret)
    print(f"receiving on http://{args.host}:{server.server_address[1]}/ (Ctrl-C ends)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
