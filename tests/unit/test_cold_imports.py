"""The API Lambda handler's cold start loads only what a request needs (issue 12): libraries
used on other paths (Redis for the relay and shared rate limits, OpenTelemetry when tracing is
on, httpx for the HTTP tool in workers, PyYAML for pipeline files, cryptography for secret
values) load on first use.
FastAPI itself imports the OpenTelemetry API; only the SDK counts here."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# FastAPI imports OpenTelemetry's API itself; its SDK is what tracing (and redis-py) add.
DEFERRED = ("redis", "opentelemetry.sdk", "httpx", "yaml", "cryptography")


def _loaded_after(statement: str) -> list[str]:
    code = (
        f"import json, sys; {statement}; "
        f"print(json.dumps(sorted(m for m in {DEFERRED!r} if m in sys.modules)))"
    )
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("ORDINAUT_", "OTEL_"))},
        "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'shared'}",
    }
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
        cwd=ROOT,
        env=env,
    )
    return list(json.loads(out.stdout.strip().splitlines()[-1]))


def test_the_api_handler_imports_no_library_a_request_does_not_need() -> None:
    assert _loaded_after("import functions.api.handler") == []


def test_the_deferred_libraries_still_load_where_they_are_used() -> None:
    loaded = _loaded_after(
        "from ordinaut.pipeline.document import parse_pipeline_text; "
        "parse_pipeline_text('pipeline: []'); "
        "from ordinaut.pipeline.tools import http; http.httpx.URL('https://example.org'); "
        "from ordinaut import events; from ordinaut.config import Settings; "
        "events.connect_redis(Settings(redis_url='redis://127.0.0.1:1/0')); "
        "from ordinaut.secrets import SecretBox, new_key; "
        "box = SecretBox(new_key()); assert box.open(box.seal('v')) == 'v'"
    )
    assert {"httpx", "redis", "yaml", "cryptography"} <= set(loaded)


def _run(code: str, **extra: str) -> str:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("ORDINAUT_", "OTEL_"))},
        "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'shared'}",
        **extra,
    }
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
        cwd=ROOT,
        env=env,
    )
    return out.stdout.strip().splitlines()[-1]


def test_the_handler_builds_the_app_without_collecting_and_freezes_it(tmp_path: Path) -> None:
    """No collection runs during the cold start (each rescanned the growing heap); afterwards
    the collector is on again and the start-up objects are out of its way."""
    code = (
        "import gc, json; runs = []\n"
        "gc.callbacks.append(lambda phase, info: runs.append(phase))\n"
        "import functions.api.handler\n"
        "print(json.dumps([len(runs), gc.isenabled(), gc.get_freeze_count()]))"
    )
    # with its bytecode compiled, as in the image (compiling the handler itself collects)
    cache = {"PYTHONPYCACHEPREFIX": str(tmp_path), "PYTHONDONTWRITEBYTECODE": ""}
    _run(code, **cache)
    collections, enabled, frozen = json.loads(_run(code, **cache))
    assert collections == 0
    assert enabled is True
    assert frozen > 10_000


def test_the_error_responses_share_one_schema_field_per_status() -> None:
    """The statuses derived for every route (api/contract.py) share one field per status,
    built once, not one per route and status (~350 schema builds at each cold start); a
    route declaring a status itself keeps the field FastAPI built for it."""
    code = (
        "import collections, json\n"
        "from functions.api.handler import app\n"
        "from fastapi.routing import APIRoute\n"
        "routes = [r for r in app.routes if isinstance(r, APIRoute) and r.include_in_schema]\n"
        "shared = {s: collections.Counter(id(r.response_fields[s]) for r in routes\n"
        "                                 if s in r.response_fields).most_common(1)[0][1]\n"
        "          for s in (401, 429, 503)}\n"
        "print(json.dumps([len(routes), shared]))"
    )
    routes, shared = json.loads(_run(code))
    assert routes > 40
    assert shared["429"] > routes - 5
    assert shared["503"] > routes - 5
    assert shared["401"] > routes // 2
