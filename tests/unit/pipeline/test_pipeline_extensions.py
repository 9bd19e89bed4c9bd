"""Tool registry, entry-point and operator-declared HTTP extensions: a broken extension is
reported and the others still load."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib.metadata import EntryPoint
from pathlib import Path
from typing import Any

import pytest

from ordinaut.config import Settings
from ordinaut.pipeline import (
    PipelineLimits,
    RunContext,
    Tool,
    ToolRegistry,
    default_registry,
    load_entry_point_tools,
    load_http_tools,
)
from ordinaut.pipeline.schema import check_schema, validate

NOW = datetime(2026, 3, 8, tzinfo=UTC)
PLUGIN = """
from ordinaut.pipeline import Tool

async def _greet(args, ctx):
    return {"greeting": "hello " + args["name"]}

GOOD = Tool(name="acme.greet", description="Greets", fn=_greet,
            input_schema={"type": "object", "required": ["name"],
                          "properties": {"name": {"type": "string"}}})

def make_many():
    return [Tool(name="acme.one", description="", fn=_greet, input_schema={"type": "object"}),
            Tool(name="acme.two", description="", fn=_greet, input_schema={"type": "object"})]

BAD_SCHEMA = Tool(name="acme.bad", description="", fn=_greet, input_schema={"type": "object", "$ref": "#/x"})
CLASH = Tool(name="echo", description="", fn=_greet, input_schema={"type": "object"})
NOT_A_TOOL = 42
"""


def test_builtins_are_registered_with_schemas() -> None:
    registry = default_registry(Settings())
    assert registry.names() == ["echo", "event.publish", "http.request", "log", "transform", "wait"]
    listed = {t["name"]: t for t in registry.describe()}
    assert listed["http.request"]["input_schema"]["required"] == ["url"]
    assert listed["event.publish"]["scopes"] == ["events:publish"]
    assert listed["wait"]["input_schema"]["properties"]["seconds"]["maximum"] == 300
    for tool in registry:
        assert check_schema(tool.input_schema) == []
        assert check_schema(tool.output_schema) == []


def test_registry_refuses_bad_tools_and_duplicates() -> None:
    async def fn(args: dict[str, Any], ctx: RunContext) -> Any:
        return None

    registry = ToolRegistry()
    registry.register(Tool(name="a.b", description="", input_schema={"type": "object"}, fn=fn))
    with pytest.raises(ValueError, match="already registered"):
        registry.register(Tool(name="a.b", description="", input_schema={"type": "object"}, fn=fn))
    with pytest.raises(ValueError, match="name"):
        registry.register(
            Tool(name="Bad Name", description="", input_schema={"type": "object"}, fn=fn)
        )
    with pytest.raises(ValueError, match="describe an object"):
        registry.register(Tool(name="c", description="", input_schema={"type": "string"}, fn=fn))
    assert "a.b" in registry
    assert len(registry) == 1


async def test_entry_points_load_and_broken_ones_are_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "ordinaut_test_plugin.py").write_text(PLUGIN)
    monkeypatch.syspath_prepend(str(tmp_path))
    group = "ordinaut.tools"
    entries = [
        EntryPoint("good", "ordinaut_test_plugin:GOOD", group),
        EntryPoint("missing", "ordinaut_no_such_module:GOOD", group),
        EntryPoint("many", "ordinaut_test_plugin:make_many", group),
        EntryPoint("bad", "ordinaut_test_plugin:BAD_SCHEMA", group),
        EntryPoint("clash", "ordinaut_test_plugin:CLASH", group),
        EntryPoint("wrong", "ordinaut_test_plugin:NOT_A_TOOL", group),
    ]
    registry = default_registry(Settings())
    problems = load_entry_point_tools(registry, entries)
    assert {"acme.greet", "acme.one", "acme.two"} <= set(registry.names())
    assert "acme.bad" not in registry
    assert len(problems) == 4
    assert any("'missing'" in p and "ModuleNotFoundError" in p for p in problems)
    assert any("'bad'" in p and "$ref" in p for p in problems)
    assert any("'clash'" in p and "already registered" in p for p in problems)
    assert any("'wrong'" in p and "expected a Tool" in p for p in problems)
    assert len([r for r in caplog.records if r.levelname == "WARNING"]) == 4
    assert await registry["acme.greet"].run(
        {"name": "Ana"}, RunContext("r", "t", "", 1, NOW, NOW)
    ) == {"greeting": "hello Ana"}


def test_entry_points_from_the_environment_do_not_fail() -> None:
    assert load_entry_point_tools(default_registry(Settings())) == []


class _Echo(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        answer = json.dumps(
            {"got": json.loads(body), "key": self.headers.get("Idempotency-Key")}
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(answer)


@pytest.fixture(scope="module")
def port() -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    server.daemon_threads = True
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


async def test_operator_http_tools_load_and_call_their_declared_url(
    tmp_path: Path, port: int
) -> None:
    declared = tmp_path / "tools.yaml"
    declared.write_text(
        f"""
tools:
  - name: crm.lookup
    description: Look up a contact
    url: http://127.0.0.1:{port}/lookup
    method: POST
    input_schema:
      type: object
      required: [email]
      properties:
        email: {{type: string}}
  - name: crm.broken
    url: ftp://example/x
  - name: crm.typo
    url: http://127.0.0.1:{port}/x
    methd: GET
  - name: crm.badschema
    url: http://127.0.0.1:{port}/x
    input_schema: {{type: object, properties: {{a: {{type: wrong}}}}}}
"""
    )
    registry = default_registry(Settings())
    problems = load_http_tools(registry, declared)
    assert "crm.lookup" in registry
    assert len(problems) == 3
    assert any("tools[1]" in p and "http or https" in p for p in problems)
    assert any("tools[2]" in p and "methd" in p for p in problems)
    assert any("tools[3]" in p and "unknown type" in p for p in problems)
    context = RunContext("r", "t", "", 1, NOW, NOW, idempotency_key="k-1")
    result = await registry["crm.lookup"].run({"email": "a@b.c"}, context)
    assert result == {"got": {"email": "a@b.c"}, "key": "k-1"}


def test_unreadable_tool_files_are_reported(tmp_path: Path) -> None:
    registry = ToolRegistry()
    assert "No such file" in load_http_tools(registry, tmp_path / "missing.yaml")[0]
    (tmp_path / "bad.yaml").write_text("tools: [unclosed")
    assert load_http_tools(registry, tmp_path / "bad.yaml")
    (tmp_path / "scalar.yaml").write_text("just text")
    assert "expected a list" in load_http_tools(registry, tmp_path / "scalar.yaml")[0]
    assert len(registry) == 0


@pytest.mark.parametrize(
    ("value", "schema", "expected"),
    [
        ({"a": 1}, {"type": "object", "required": ["a", "b"]}, [("b", "is required")]),
        (
            [1, "x"],
            {"type": "array", "items": {"type": "integer"}},
            [("[1]", "must be integer, not string")],
        ),
        (3.0, {"type": "integer", "minimum": 4}, [("", "must be at least 4")]),
        (5, {"exclusiveMaximum": 5}, [("", "must be less than 5")]),
        ("abc", {"maxLength": 2, "pattern": "^a"}, [("", "must have at most 2 character(s)")]),
        (True, {"type": "number"}, [("", "must be number, not boolean")]),
        (None, {"type": ["string", "null"]}, []),
        (
            {"x": 1},
            {"additionalProperties": {"type": "string"}},
            [("x", "must be string, not integer")],
        ),
        (
            2,
            {"anyOf": [{"type": "string"}, {"minimum": 3}]},
            [("", "matches none of the allowed forms (anyOf)")],
        ),
        ([], {"minItems": 1}, [("", "must have at least 1 item(s)")]),
        ("b", {"enum": ["a"]}, [("", "must be one of 'a'")]),
        (1, False, [("", "no value is allowed here")]),
    ],
)
def test_schema_subset(value: Any, schema: Any, expected: list[tuple[str, str]]) -> None:
    assert validate(value, schema) == expected


def test_schema_check_rejects_what_it_cannot_validate() -> None:
    assert check_schema({"type": "object", "properties": {"a": {"$ref": "#/x"}}}) == [
        "schema.properties.a: unsupported keyword '$ref'"
    ]
    assert check_schema({"pattern": "("})[0].startswith("schema.pattern: not a regular expression")
    assert check_schema({"maxLength": -1}) == ["schema.maxLength: must be a non-negative integer"]


def test_limits_from_settings() -> None:
    limits = PipelineLimits.from_settings(
        Settings(max_steps=7, max_step_timeout_s=60, max_body_bytes=1000)
    )
    assert (limits.max_steps, limits.max_step_timeout_s, limits.max_payload_bytes) == (7, 60, 1000)
