"""Stand-ins for the outside services the examples call: a calendar, a weather forecast, a
price feed and an inbox that records what a pipeline delivers. Loopback only, JSON only.

    python examples/stubs.py [--port 8765]

| route | answers |
| --- | --- |
| ``GET /calendar/today`` | ``{"date", "events": [{"start", "title"}, ...]}`` |
| ``GET /weather/today?city=`` | ``{"city", "summary", "low_c", "high_c", "precip_chance"}`` |
| ``GET /price?symbol=`` | ``{"symbol", "price"}``; ``POST /price`` ``{"price"}`` sets it |
| ``POST /notify`` | records the JSON body; ``{"delivered": true, "id"}`` |
| ``GET /notify`` | ``{"items": [...]}``: everything delivered so far |

Ordinaut's ``http.request`` refuses loopback unless the operator allows it, so the worker
must run with ``ORDINAUT_EGRESS_ALLOWLIST=127.0.0.1:<port>`` (or under
``ordinaut dev --allow-loopback-egress``) to reach these.
"""

from __future__ import annotations

import argparse
import json
import threading
from datetime import date
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

DEFAULT_PORT = 8765
MAX_BODY = 64 * 1024


class StubServices:
    """The stub services on 127.0.0.1:``port`` (0 picks a free port), served on a thread."""

    def __init__(self, port: int = DEFAULT_PORT, *, price: float = 120.0) -> None:
        self.inbox: list[Any] = []
        self.price = price
        self.price_checks = 0
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", port), _handler(self))
        self.server.daemon_threads = True
        self.port = int(self.server.server_address[1])
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> StubServices:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def delivered(self) -> list[Any]:
        with self.lock:
            return list(self.inbox)

    def checks(self) -> int:
        """How many times the price has been read."""
        with self.lock:
            return self.price_checks

    def set_price(self, price: float) -> None:
        with self.lock:
            self.price = price

    def answer(self, method: str, path: str, query: dict[str, str], body: Any) -> tuple[int, Any]:
        """The reply to one request: (status, JSON document)."""
        with self.lock:
            if (method, path) == ("GET", "/calendar/today"):
                return 200, {
                    "date": date.today().isoformat(),
                    "events": [
                        {"start": "09:30", "title": "Stand-up"},
                        {"start": "12:00", "title": "Lunch with Dan"},
                        {"start": "16:00", "title": "Dentist"},
                    ],
                }
            if (method, path) == ("GET", "/weather/today"):
                city = query.get("city", "Chisinau")
                return 200, {
                    "city": city,
                    "summary": "light rain",
                    "low_c": 7,
                    "high_c": 14,
                    "precip_chance": 60,
                }
            if (method, path) == ("GET", "/price"):
                self.price_checks += 1
                return 200, {"symbol": query.get("symbol", "ACME"), "price": self.price}
            if (method, path) == ("POST", "/price"):
                if not isinstance(body, dict) or not isinstance(body.get("price"), int | float):
                    return 422, {"error": 'send {"price": <number>}'}
                self.price = float(body["price"])
                return 200, {"price": self.price}
            if (method, path) == ("POST", "/notify"):
                self.inbox.append(body)
                return 200, {"delivered": True, "id": len(self.inbox)}
            if (method, path) == ("GET", "/notify"):
                return 200, {"items": list(self.inbox)}
        return 404, {"error": f"no stub for {method} {path}"}


def _handler(stubs: StubServices) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "ordinaut-example-stubs"

        def _serve(self, method: str) -> None:
            parts = urlsplit(self.path)
            query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
            body: Any = None
            length = int(self.headers.get("Content-Length") or 0)
            if 0 < length <= MAX_BODY:
                try:
                    body = json.loads(self.rfile.read(length))
                except ValueError:
                    body = None
            status, doc = stubs.answer(method, parts.path, query, body)
            data = json.dumps(doc).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            self._serve("GET")

        def do_POST(self) -> None:
            self._serve("POST")

        def log_message(self, format: str, *args: Any) -> None:
            pass  # the examples print what matters themselves

    return Handler


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    args = parser.parse_args()
    stubs = StubServices(args.port).start()
    print(f"stub services on {stubs.base} (Ctrl-C stops them)")
    print(
        f"the worker needs ORDINAUT_EGRESS_ALLOWLIST=127.0.0.1:{stubs.port} "
        "(or `make dev ARGS=--allow-loopback-egress`)"
    )
    try:
        stubs.thread.join()
    except KeyboardInterrupt:
        stubs.stop()


if __name__ == "__main__":
    main()
