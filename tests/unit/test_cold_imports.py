"""The API Lambda handler's cold start loads only what a request needs (issue 12): libraries
used on other paths (Redis for the relay and shared rate limits, OpenTelemetry when tracing is
on, httpx for the HTTP tool in workers, PyYAML for pipeline files) load on first use.
FastAPI itself imports the OpenTelemetry API; only the SDK counts here."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# FastAPI imports OpenTelemetry's API itself; its SDK is what tracing (and redis-py) add.
DEFERRED = ("redis", "opentelemetry.sdk", "httpx", "yaml")


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
        "events.connect_redis(Settings(redis_url='redis://127.0.0.1:1/0'))"
    )
    assert {"httpx", "redis", "yaml"} <= set(loaded)
