"""Schemathesis against the API's own OpenAPI document: zero findings.

The app is served on a loopback port (real PostgreSQL and Redis, frozen clock) and tested as an
agent with every scope but admin, with a fixed seed and a bounded number of examples per
operation: the examples, coverage and fuzzing phases, then the stateful phase, which follows
the document's links (a created task -> read, patch, pause, run now -> the queued run...).
Checks: no 5xx, every status and content type documented, every body valid against its schema.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest
import schemathesis
import uvicorn
from schemathesis import engine
from schemathesis.config import SchemathesisConfig
from schemathesis.engine import events

from ordinaut.api import create_app
from ordinaut.clock import FrozenClock
from ordinaut.config import Settings

SEED = 20261204
MAX_EXAMPLES = 25
STATEFUL_STEPS = 20
CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
)
AGENT_SCOPES = ["tasks:read", "tasks:write", "runs:read", "events:publish"]
ADMIN_PATHS = r"^/(agents|events/shared-topics)"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
async def live(settings: Settings, pool: Any, clock: FrozenClock) -> AsyncIterator[str]:
    """The app on http://127.0.0.1:PORT from this event loop. No rate limit (429 would hide
    findings), and live event streams end after a moment instead of five minutes."""
    fuzz_settings = dataclasses.replace(
        settings, rate_limit_per_minute=0, sse_max_seconds=0.3, sse_poll_s=0.1
    )
    app = create_app(fuzz_settings, clock=clock, pool=pool)
    port = _free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, lifespan="off", log_config=None, log_level="warning"
    )
    server = uvicorn.Server(config)
    server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign]  # pytest owns signals
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


def _config(base_url: str, token: str) -> SchemathesisConfig:
    enabled = {name: {"enabled": True} for name in CHECKS}
    return SchemathesisConfig.from_dict(
        {
            "seed": SEED,
            "base-url": base_url,
            "headers": {"Authorization": f"Bearer {token}"},
            "workers": 1,
            "request-timeout": 30,
            "generation": {
                "max-examples": MAX_EXAMPLES,
                "deterministic": True,
                "mode": "all",
                "database": "none",
            },
            "checks": {"enabled": False, **enabled},
            "phases": {
                "examples": {"enabled": True},
                "coverage": {"enabled": True},
                "fuzzing": {"enabled": True},
                "stateful": {"enabled": True, "max-steps": STATEFUL_STEPS},
            },
        }
    )


def _findings(schema: Any) -> tuple[list[str], dict[str, int], dict[str, set[int]]]:
    """Run every phase: the failed checks as readable lines, how many scenarios each phase
    ran, and the statuses each operation answered."""
    found: list[str] = []
    ran: dict[str, int] = {}
    seen: dict[str, set[int]] = {}
    for event in engine.from_schema(schema).execute():
        if isinstance(event, events.ScenarioFinished | events.FuzzScenarioFinished):
            phase = str(getattr(event, "phase", "fuzzing"))
            ran[phase] = ran.get(phase, 0) + 1
            for interaction in event.recorder.interactions.values():
                if interaction.response is not None:
                    label = f"{interaction.request.method} {_template(interaction.request.uri)}"
                    seen.setdefault(label, set()).add(interaction.response.status_code)
            for case_id, checks in event.recorder.checks.items():
                for check in checks:
                    if check.failure_info is None:
                        continue
                    case = event.recorder.cases[case_id].value
                    interaction = event.recorder.interactions.get(case_id)
                    status = (
                        interaction.response.status_code
                        if interaction and interaction.response
                        else None
                    )
                    found.append(
                        f"[{phase}] {check.name}: {case.method} {case.formatted_path} -> {status}: "
                        f"{check.failure_info.failure.title}"
                    )
        elif isinstance(event, events.NonFatalError):
            found.append(f"error in {event.label}: {event.info.title}: {event.info.message}")
        elif isinstance(event, events.FatalError):
            raise event.exception
    return found, ran, seen


def _template(uri: str) -> str:
    """``/tasks/3f2b.../pause?x=1`` as ``/tasks/{id}/pause``."""
    path = uri.split("://", 1)[-1].split("/", 1)[-1].split("?", 1)[0]
    parts = ["{id}" if len(p) == 36 and p.count("-") == 4 else p for p in path.split("/")]
    return "/" + "/".join(parts)


async def _fuzz(live: str, token: str, admin_only: bool = False) -> dict[str, set[int]]:
    async with httpx.AsyncClient() as http:
        document = (await http.get(f"{live}/openapi.json")).json()
    schema = schemathesis.openapi.from_dict(document, config=_config(live, token))
    if admin_only:
        schema = schema.include(path_regex=ADMIN_PATHS)
    found, ran, seen = await asyncio.to_thread(_findings, schema)
    assert not found, "\n".join(sorted(set(found)))
    assert ran.get("stateful"), ran
    return seen


async def test_schemathesis_finds_nothing(
    live: str, make_agent: Callable[..., Awaitable[dict[str, Any]]]
) -> None:
    agent = await make_agent(AGENT_SCOPES, name="fuzzer")
    seen = await _fuzz(live, agent["token"])
    # the run reached real work, not only refusals: the examples created a task and
    # published an event, and the links led to a task created during the run
    assert 201 in seen["POST /tasks"], seen
    assert 202 in seen["POST /events"], seen
    followed = [
        label for label, statuses in seen.items() if "{id}" in label and statuses & {200, 202}
    ]
    assert followed, seen


async def test_schemathesis_finds_nothing_on_the_admin_routes(
    live: str, make_agent: Callable[..., Awaitable[dict[str, Any]]]
) -> None:
    """The routes only an admin reaches (agents, shared topics), as an admin."""
    admin = await make_agent(["admin"], name="fuzz-admin")
    seen = await _fuzz(live, admin["token"], admin_only=True)
    assert 201 in seen["POST /agents"], seen
    assert 201 in seen["POST /events/shared-topics"], seen
    assert 200 in seen["GET /agents"], seen
