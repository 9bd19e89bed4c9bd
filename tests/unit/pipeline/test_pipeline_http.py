"""``http.request`` against a local server on 127.0.0.1 (the only address tests connect to):
allowed when allowlisted, refused otherwise, redirects re-checked, size and time capped,
connections pinned to the checked address, the idempotency key sent."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from ordinaut.config import Settings
from ordinaut.pipeline import PipelineLimits, RunContext, ToolError, default_registry, execute
from ordinaut.pipeline.tools import Allowlist, EgressRefused, HttpEgress, http_egress

NOW = datetime(2026, 3, 8, 7, 30, tzinfo=UTC)
LIMITS = PipelineLimits(http_max_response_bytes=50_000, http_timeout_s=2.0)


class Handler(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _send(
        self, status: int, body: bytes, content_type: str = "application/json", **headers: str
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        for key, value in headers.items():
            self.send_header(key.replace("_", "-"), value)
        self.end_headers()
        self.wfile.write(body)

    def _seen(self, body: bytes = b"") -> bytes:
        seen = {
            "method": self.command,
            "path": self.path,
            "host": self.headers["Host"],
            "idempotency_key": self.headers.get("Idempotency-Key"),
            "authorization": self.headers.get("Authorization"),
            "body": body.decode() or None,
        }
        return json.dumps(seen).encode()

    def do_GET(self) -> None:
        port = self.server.server_address[1]
        if self.path.startswith("/json"):
            self._send(200, self._seen())
        elif self.path == "/text":
            self._send(200, "héllo".encode("latin-1"), "text/plain; charset=latin-1")
        elif self.path == "/redirect-same":
            self._send(302, b"", Location=f"http://127.0.0.1:{port}/json?after=redirect")
        elif self.path == "/redirect-other-port":
            self._send(302, b"", Location="http://127.0.0.1:1/json")
        elif self.path == "/redirect-metadata":
            self._send(302, b"", Location="http://169.254.169.254/latest/meta-data/")
        elif self.path == "/redirect-loop":
            self._send(302, b"", Location="/redirect-loop")
        elif self.path == "/big-declared":
            self._send(200, b"x" * 60_000, "text/plain", Content_Length="60000")
        elif self.path == "/big-streamed":
            self._send(200, b"y" * 60_000, "text/plain")  # HTTP/1.0: no length, ends at close
        elif self.path == "/slow":
            time.sleep(1.0)
            self._send(200, b"{}")
        elif self.path == "/fail":
            self._send(503, b'{"error": "down"}')
        else:
            self._send(404, b"{}")

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        self._send(200, self._seen(self.rfile.read(length)))


class QuietServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # the client hung up on /slow or a capped body on purpose


@pytest.fixture(scope="module")
def port() -> Iterator[int]:
    server = QuietServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


@pytest.fixture
def no_connect(monkeypatch: pytest.MonkeyPatch) -> None:
    async def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("a connection was attempted")

    monkeypatch.setattr(httpx.AsyncClient, "send", refuse)


def ctx() -> RunContext:
    return RunContext("run-1", "task-1", "T", 1, NOW, NOW, idempotency_key="slot-key-1")


def egress(*allow: str, resolver: Any = None) -> HttpEgress:
    settings = Settings(egress_allowlist=allow)
    return http_egress(settings, limits=LIMITS, resolver=resolver)


async def test_allowlisted_server_answers_with_parsed_json_and_idempotency_key(port: int) -> None:
    result = await egress(f"127.0.0.1:{port}").request(
        "GET",
        f"http://127.0.0.1:{port}/json",
        query={"a": 1, "b": True},
        idempotency_key="slot-key-1",
    )
    assert result["status"] == 200
    assert result["headers"]["content-type"] == "application/json"
    assert result["body"]["path"] == "/json?a=1&b=true"
    assert result["body"]["idempotency_key"] == "slot-key-1"
    assert result["body"]["host"] == f"127.0.0.1:{port}"


async def test_text_bodies_are_decoded_with_their_charset(port: int) -> None:
    result = await egress(f"127.0.0.1:{port}").request("GET", f"http://127.0.0.1:{port}/text")
    assert result["body"] == "héllo"


@pytest.mark.usefixtures("no_connect")
@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:1/",
        "http://[::1]/",
        "http://169.254.169.254/latest/meta-data/",
        "http://2130706433/",
    ],
)
async def test_internal_targets_are_refused_before_connecting(url: str) -> None:
    async def resolve(host: str, port: int) -> list[str]:
        return ["127.0.0.1"]  # what inet_aton makes of 2130706433

    with pytest.raises(EgressRefused):
        await egress(resolver=resolve).request("GET", url)


@pytest.mark.usefixtures("no_connect")
async def test_a_name_resolving_to_a_private_address_is_refused_before_connecting() -> None:
    async def resolve(host: str, port: int) -> list[str]:
        return {"intranet.test": ["10.20.30.40"], "rebind.test": ["8.8.8.8", "::ffff:127.0.0.1"]}[
            host
        ]

    for url in ("https://intranet.test/", "http://rebind.test/"):
        with pytest.raises(EgressRefused, match="refused to connect"):
            await egress(resolver=resolve).request("GET", url)


async def test_connection_is_pinned_to_the_checked_address(port: int) -> None:
    asked: list[str] = []

    async def resolve(host: str, p: int) -> list[str]:
        asked.append(host)
        return ["127.0.0.1"]

    client = egress(f"pinned.test:{port}", resolver=resolve)
    result = await client.request("GET", f"http://pinned.test:{port}/json")
    assert result["body"]["host"] == f"pinned.test:{port}"
    assert asked == ["pinned.test"]


async def test_redirects_are_followed_and_rechecked(port: int) -> None:
    client = egress(f"127.0.0.1:{port}")
    same = await client.request("GET", f"http://127.0.0.1:{port}/redirect-same")
    assert same["body"]["path"] == "/json?after=redirect"
    assert same["url"].endswith("/json?after=redirect")
    for path in ("/redirect-other-port", "/redirect-metadata"):
        with pytest.raises(EgressRefused):
            await client.request("GET", f"http://127.0.0.1:{port}{path}")
    with pytest.raises(ToolError) as info:
        await client.request("GET", f"http://127.0.0.1:{port}/redirect-loop")
    assert info.value.code == "too_many_redirects"


async def test_response_size_is_capped(port: int) -> None:
    client = egress(f"127.0.0.1:{port}")
    for path in ("/big-declared", "/big-streamed"):
        with pytest.raises(ToolError) as info:
            await client.request("GET", f"http://127.0.0.1:{port}{path}")
        assert info.value.code == "response_too_large"


async def test_total_time_is_capped(port: int) -> None:
    client = HttpEgress(PipelineLimits(http_timeout_s=0.2), Allowlist.parse([f"127.0.0.1:{port}"]))
    with pytest.raises(ToolError) as info:
        # the server sleeps far longer than the cap: only the cap can end this in time
        async with asyncio.timeout(30):
            await client.request("GET", f"http://127.0.0.1:{port}/slow")
    assert info.value.code == "timeout"
    assert info.value.retryable


async def test_only_http_and_https(port: int) -> None:
    for url in ("file:///etc/passwd", "ftp://127.0.0.1/", "http:///nohost"):
        with pytest.raises(ToolError):
            await egress(f"127.0.0.1:{port}").request("GET", url)


async def test_http_request_step_sends_params_previous_output_and_idempotency_key(
    port: int,
) -> None:
    registry = default_registry(Settings(egress_allowlist=(f"127.0.0.1:{port}",)), limits=LIMITS)
    payload = {
        "params": {"base": f"http://127.0.0.1:{port}", "city": "Chisinau"},
        "pipeline": [
            {"id": "prep", "uses": "transform", "with": {"value": {"q": "${params.city}", "n": 3}}},
            {
                "id": "call",
                "uses": "http.request",
                "with": {
                    "method": "POST",
                    "url": "${params.base}/submit",
                    "headers": {"Authorization": "Bearer ${secrets.API}"},
                    "json": "${steps.prep.output}",
                },
            },
            {
                "id": "fail",
                "uses": "http.request",
                "with": {"url": "${params.base}/fail"},
                "retry": {"attempts": 2},
            },
        ],
    }
    context = RunContext(
        "run-1",
        "task-1",
        "T",
        1,
        NOW,
        NOW,
        idempotency_key="slot-key-1",
        secrets={"API": "tok-123"},
    )
    result = await execute(payload, context, registry=registry, limits=LIMITS)
    call = result.steps[1]
    seen = call["output"]["body"]
    assert json.loads(seen["body"]) == {"q": "Chisinau", "n": 3}
    assert seen["idempotency_key"] == "slot-key-1:call"  # the slot's key, then the step's id
    assert seen["authorization"] == "Bearer ***"  # masked in the record; the server saw the token
    assert call["input"]["headers"] == {"Authorization": "Bearer ***"}
    assert result.error is not None
    assert result.error["code"] == "http_status"
    assert "answered 503" in result.error["message"]
    assert result.steps[2]["attempts"] == 2


async def test_refused_step_is_not_retried() -> None:
    registry = default_registry(Settings(), limits=LIMITS)
    payload = {
        "pipeline": [
            {
                "id": "x",
                "uses": "http.request",
                "with": {"url": "http://127.0.0.1:1/"},
                "retry": {"attempts": 3},
            }
        ]
    }
    result = await execute(payload, ctx(), registry=registry, limits=LIMITS)
    assert result.error is not None
    assert result.error["code"] == "egress_refused"
    assert result.steps[0]["attempts"] == 1


class HonouringReceiver(BaseHTTPRequestHandler):
    """A receiver that honours Idempotency-Key: a request whose key it has seen is answered
    with the first response and has no effect of its own."""

    server: IdempotentServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))))
        key = self.headers.get("Idempotency-Key", "")
        with self.server.lock:
            self.server.requests.append((key, body["item"]))
            if key not in self.server.answers:
                self.server.effects.append(body["item"])
                self.server.answers[key] = {"order": len(self.server.effects), **body}
            answer = json.dumps(self.server.answers[key]).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)


class IdempotentServer(QuietServer):
    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), HonouringReceiver)
        self.lock = threading.Lock()
        self.requests: list[tuple[str, str]] = []
        self.effects: list[str] = []
        self.answers: dict[str, dict[str, Any]] = {}


@pytest.fixture
def receiver() -> Iterator[IdempotentServer]:
    server = IdempotentServer()
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


async def test_each_step_sends_its_own_idempotency_key_the_same_on_every_attempt(
    receiver: IdempotentServer,
) -> None:
    # Two ordinary steps POSTing to one receiver are two requests: with the slot's key on
    # both, a receiver that honours Idempotency-Key answers the second with the first's
    # response and the second order is never placed. A retry of the run (attempt 2) must
    # send the same key per step as attempt 1, so the receiver drops those as repeats.
    port = receiver.server_address[1]
    registry = default_registry(Settings(egress_allowlist=(f"127.0.0.1:{port}",)), limits=LIMITS)
    url = f"http://127.0.0.1:{port}/orders"
    payload = {
        "params": {"more": ["bread", "jam"]},
        "pipeline": [
            {
                "id": "first",
                "uses": "http.request",
                "with": {"method": "POST", "url": url, "json": {"item": "tea"}},
            },
            {
                "id": "second",
                "uses": "http.request",
                "with": {"method": "POST", "url": url, "json": {"item": "milk"}},
            },
            {
                "id": "each",
                "uses": "http.request",
                "foreach": "${params.more}",
                "with": {"method": "POST", "url": url, "json": {"item": "${item}"}},
            },
        ],
    }
    outputs = []
    for attempt in (1, 2):
        context = RunContext("run-1", "task-1", "T", attempt, NOW, NOW, idempotency_key="ord-slot")
        result = await execute(payload, context, registry=registry, limits=LIMITS)
        assert result.status == "succeeded", result.error
        outputs.append([step["output"] for step in result.steps])
    first_attempt = [
        ("ord-slot:first", "tea"),
        ("ord-slot:second", "milk"),
        ("ord-slot:each:0", "bread"),
        ("ord-slot:each:1", "jam"),
    ]
    assert receiver.requests == first_attempt * 2  # attempt 2 sent the very same keys
    assert receiver.effects == ["tea", "milk", "bread", "jam"]  # each placed once, none lost
    first, second, each = outputs[0]
    assert second["body"] == {"order": 2, "item": "milk"}  # not the first step's replayed answer
    assert [item["body"]["item"] for item in each] == ["bread", "jam"]

    def bodies(steps: list[Any]) -> list[Any]:
        # the answers only: the receiver's Date header may tick between the attempts
        return [[i["body"] for i in s] if isinstance(s, list) else s["body"] for s in steps]

    assert bodies(outputs[1]) == bodies(outputs[0])  # attempt 2 got the first answers back
