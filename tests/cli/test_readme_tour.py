"""README's five-minute tour, run as written (bash) against the API on a loopback port.

The tour must fail loudly: every step checks its answer, prints the API's error, and a step
that needs the task id refuses to run without it (never "no such route" on ``/tasks//...``).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(
    shutil.which("curl") is None or shutil.which("python3") is None,
    reason="the tour needs curl and python3 on PATH",
)


def tour() -> str:
    readme = (REPO / "README.md").read_text()
    section = readme.split("\n## A five-minute tour\n", 1)[1].split("\n## ", 1)[0]
    match = re.search(r"```sh\n(.*?)```", section, re.S)
    assert match, "no sh block in the tour"
    return match.group(1)


async def run_tour(url: str, cwd: Path, *, strict: bool) -> tuple[int, str, str]:
    """The tour as a script: ``strict`` adds ``set -e`` (a script), else it runs like lines
    pasted one after another into a shell."""
    script = ("set -e\n" if strict else "") + tour()
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORDINAUT_")}
    env["ORD"] = url
    env.pop("TOKEN", None)
    proc = await asyncio.create_subprocess_exec(
        "bash",
        "-c",
        script,
        cwd=cwd,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def credentials(home: Path, agent: dict[str, Any], secret: str | None = None) -> Path:
    (home / ".ordinaut").mkdir(exist_ok=True)
    saved = {"agent_id": agent["agent_id"], "agent_secret": secret or agent["secret"]}
    (home / ".ordinaut" / "credentials.json").write_text(json.dumps(saved))
    return home


def test_every_step_is_checked() -> None:
    """Each request goes through `api` (which fails on an error status); every use of the
    task id is guarded."""
    text = tour()
    assert "--fail-with-body" in text
    for line in text.splitlines():
        assert "curl" not in line or "--fail-with-body" in line, line
        assert "$TASK" not in line, f"unguarded task id: {line}"
    assert text.count("${TASK:?") == 5


async def test_the_tour_runs_as_written(
    live_url: str, admin: dict[str, Any], tmp_path: Path
) -> None:
    code, out, err = await run_tour(live_url, credentials(tmp_path, admin), strict=True)
    assert code == 0, err
    answers = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    preview, queued, runs, latest, paused, validated = answers
    assert len(preview["fire_times"]) == 3
    assert latest["id"] == queued["run_id"] == runs["items"][0]["id"]
    assert paused["status"] == "paused"
    assert paused["title"] == "hello every minute"
    assert validated["valid"] is True
    assert validated["steps"][0]["input"] == {"message": "good morning, Ana"}
    assert err == ""


async def test_a_failed_step_prints_the_api_error_and_stops(
    live_url: str,
    admin: dict[str, Any],
    make_agent: Callable[..., Awaitable[dict[str, Any]]],
    tmp_path: Path,
) -> None:
    # A wrong secret: the token exchange fails; the script stops there with the API's error.
    home = credentials(tmp_path, admin, secret="not-the-secret")
    code, out, err = await run_tour(live_url, home, strict=True)
    assert code != 0
    assert out == ""
    assert "POST /agents/auth/token failed: " in err
    assert '"code":"invalid_credentials"' in err.replace(" ", "")

    # An agent that may only read: the create fails; pasted line by line, the later steps
    # refuse to run without a task id instead of calling /tasks//preview.
    reader = await make_agent(["tasks:read", "runs:read"])
    home = credentials(tmp_path, reader)
    code, out, err = await run_tour(live_url, home, strict=False)
    assert code != 0
    assert "POST /tasks failed: " in err
    assert '"code":"forbidden"' in err.replace(" ", "")
    assert "TASK: no task: see the error above" in err
    assert "no such route" not in err + out
