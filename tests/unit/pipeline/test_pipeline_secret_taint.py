"""Secrets stay secret through derived values (issue 17, finding 3).

Whatever a pipeline computes from a secret (pieces, upper case, reversed, encoded) is secret:
it never reaches a step record, the run output, the process log or an event, while the
steps themselves still receive the real values.
"""

from __future__ import annotations

import base64
import json
import logging
import threading
import urllib.parse
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from ordinaut.config import Settings
from ordinaut.pipeline import PipelineLimits, RunContext, Tool, default_registry, execute

NOW = datetime(2026, 3, 8, 7, 30, tzinfo=UTC)
LIMITS = PipelineLimits(http_timeout_s=5.0)
SECRET = "Sx9-kQ2/pL7+zR4 wM"  # characters that URL-encode and base64 differently
RECEIVED: list[Any] = []


async def _capture(args: dict[str, Any], ctx: RunContext) -> Any:
    RECEIVED.append(args)
    return {"ok": True}


def _registry(settings: Settings | None = None) -> Any:
    registry = default_registry(settings or Settings(), limits=LIMITS)
    registry.register(
        Tool(name="test.capture", description="", input_schema={"type": "object"}, fn=_capture)
    )
    return registry


def _forms(secret: str) -> list[str]:
    """The secret and what a leak of it would look like."""
    return [
        secret,
        secret[:6],
        secret[6:],
        secret.upper(),
        secret[::-1],
        urllib.parse.quote(secret, safe=""),
        urllib.parse.quote_plus(secret),
        base64.b64encode(secret.encode()).decode(),
    ]


def _leaks(value: Any, secret: str = SECRET) -> list[str]:
    text = json.dumps(value, ensure_ascii=False)
    return [form for form in _forms(secret) if form in text]


async def _run(pipeline: list[dict[str, Any]], registry: Any = None, **ctx: Any) -> Any:
    context = RunContext(
        "run-1", "task-1", "T", 1, NOW, NOW, secrets={"X": SECRET}, idempotency_key="k", **ctx
    )
    return await execute(
        {"pipeline": pipeline}, context, registry=registry or _registry(), limits=LIMITS
    )


@pytest.mark.parametrize(
    "expr",
    ["[substr(@, `0`, `6`), substr(@, `6`, `100`)]", "upper(@)", "reverse(@)", "@"],
)
async def test_a_transform_of_a_secret_is_recorded_masked(expr: str) -> None:
    RECEIVED.clear()
    result = await _run(
        [
            {"id": "t", "uses": "transform", "with": {"expr": expr, "input": "${secrets.X}"}},
            {"id": "use", "uses": "test.capture", "with": {"v": "${steps.t.output}"}},
            {"id": "show", "uses": "echo", "with": {"v": "${steps.t.output}"}},
        ]
    )
    assert result.succeeded, result.error
    assert _leaks(result.to_dict()) == []
    # the steps still compute with the real value
    real = {
        "@": SECRET,
        "upper(@)": SECRET.upper(),
        "reverse(@)": SECRET[::-1],
    }.get(expr, [SECRET[:6], SECRET[6:]])
    assert [{"v": real}] == RECEIVED


async def test_secret_derived_values_in_templates_are_masked_in_every_record() -> None:
    result = await _run(
        [
            {
                "id": "e",
                "uses": "echo",
                "with": {
                    "a": "${reverse(secrets.X)}",
                    "b": "${[substr(secrets.X, `0`, `6`), substr(secrets.X, `6`, `100`)]}",
                    "c": "key=${url_encode(secrets.X)}",
                    "n": "${length(secrets.X)}",
                },
            },
            {"id": "again", "uses": "echo", "with": {"x": "${steps.e.output}"}},
        ]
    )
    assert result.succeeded, result.error
    assert _leaks(result.to_dict()) == []
    assert result.steps[0]["input"]["n"] == 3  # computed from *** , not from the secret


async def test_an_error_about_a_derived_value_does_not_quote_it() -> None:
    result = await _run(
        [
            {
                "id": "t",
                "uses": "transform",
                "with": {"expr": "abs(reverse(@))", "input": "${secrets.X}"},
            }
        ]
    )
    assert not result.succeeded
    assert _leaks(result.to_dict()) == []
    in_template = await _run(
        [{"id": "e", "uses": "echo", "with": {"x": "${abs(reverse(secrets.X))}"}}]
    )
    assert in_template.error is not None
    assert "abs()" in in_template.error["message"]
    assert _leaks(in_template.to_dict()) == []


async def test_the_log_tool_never_writes_a_derived_secret(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="ordinaut.pipeline.log")
    result = await _run(
        [
            {"id": "l", "uses": "log", "with": {"value": "${reverse(secrets.X)}"}},
            {
                "id": "t",
                "uses": "transform",
                "with": {"expr": "upper(@)", "input": "${secrets.X}"},
            },
            {"id": "l2", "uses": "log", "with": {"value": {"up": "${steps.t.output}"}}},
        ]
    )
    assert result.succeeded, result.error
    logged = [r.__dict__ for r in caplog.records if r.name == "ordinaut.pipeline.log"]
    assert len(logged) == 2
    assert _leaks([str(r) for r in logged]) == []
    assert _leaks(result.to_dict()) == []


async def test_event_publish_never_publishes_a_derived_secret() -> None:
    emitted: list[tuple[str, dict[str, Any]]] = []
    result = await _run(
        [
            {
                "id": "t",
                "uses": "transform",
                "with": {"expr": "reverse(@)", "input": "${secrets.X}"},
            },
            {
                "id": "p",
                "uses": "event.publish",
                "with": {
                    "topic": "done",
                    "payload": {
                        "r": "${steps.t.output}",
                        "u": "${upper(secrets.X)}",
                        "b": "${[substr(secrets.X, `0`, `6`), substr(secrets.X, `6`, `100`)]}",
                        "plain": "kept",
                    },
                },
            },
        ],
        emit=lambda topic, payload: emitted.append((topic, payload)),
    )
    assert result.succeeded, result.error
    ((topic, payload),) = emitted
    assert topic == "done"
    assert payload["plain"] == "kept"
    assert payload["r"] == "***"
    assert payload["u"] == "***"
    assert _leaks(payload) == []
    assert _leaks(result.to_dict()) == []
    refused = await _run(
        [{"id": "p", "uses": "event.publish", "with": {"topic": "t.${lower(secrets.X)}"}}],
        emit=lambda topic, payload: emitted.append((topic, payload)),
    )
    assert refused.error is not None
    assert refused.error["code"] in (
        "secret_in_event",
        "invalid_arguments",
    )
    assert len(emitted) == 1


class _Echo(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        status = 404 if self.path.startswith("/missing") else 200
        body = json.dumps({"path": self.path, "auth": self.headers.get("Authorization")}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False


@pytest.fixture
def port() -> Iterator[int]:
    server = _Server(("127.0.0.1", 0), _Echo)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.daemon = True
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


async def test_http_request_never_records_a_secret_query_string(port: int) -> None:
    registry = _registry(Settings(egress_allowlist=(f"127.0.0.1:{port}",)))
    base = f"http://127.0.0.1:{port}"
    result = await _run(
        [
            {
                "id": "in_url",
                "uses": "http.request",
                "with": {"url": f"{base}/echo?key=${{url_encode(secrets.X)}}&page=2"},
            },
            {
                "id": "in_query",
                "uses": "http.request",
                "with": {"url": f"{base}/echo", "query": {"key": "${secrets.X}"}},
            },
            {
                "id": "basic",
                "uses": "http.request",
                "with": {
                    "url": f"{base}/echo",
                    "headers": {"Authorization": "Basic ${secrets.X}"},
                },
            },
            {
                "id": "fails",
                "uses": "http.request",
                "with": {"url": f"{base}/missing", "query": {"key": "${secrets.X}"}},
            },
        ],
        registry=registry,
    )
    assert result.error is not None
    assert result.error["step"] == "fails"
    assert [s["status"] for s in result.steps] == ["succeeded"] * 3 + ["failed"]
    # the server really got the secret; nothing recorded shows it in any form
    for step in result.steps[:2]:
        assert step["output"]["url"] == f"{base}/echo"
        assert step["output"]["status"] == 200
    assert result.steps[0]["output"]["body"]["path"].startswith("/echo?key=***")
    assert _leaks(result.to_dict()) == []
    assert result.error["message"].startswith(f"GET {base}/missing answered 404: ")


async def test_a_value_the_shadow_cannot_compute_is_recorded_as_masked() -> None:
    port_secret = "8443"
    context = RunContext(
        "run-1", "task-1", "T", 1, NOW, NOW, secrets={"PORT": port_secret}, idempotency_key="k"
    )
    result = await execute(
        {
            "pipeline": [
                {
                    "id": "e",
                    "uses": "echo",
                    "with": {"p": "${abs(to_number(secrets.PORT))}", "plain": "${`1`}"},
                }
            ]
        },
        context,
        registry=_registry(),
        limits=LIMITS,
    )
    assert result.succeeded, result.error
    assert result.steps[0]["input"] == {"p": "***", "plain": 1}
    assert "8443" not in json.dumps(result.to_dict())
