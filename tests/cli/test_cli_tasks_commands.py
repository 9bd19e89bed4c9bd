"""`ordinaut login / tasks / runs / events` against the API served on a loopback port.

The commands are blocking (the sync client), so each runs on a thread while the test's event
loop serves the API; the in-process worker runs what they queue.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import stat
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import yaml
from samples import CRON_TASK, FAILING_PAYLOAD

from ordinaut import cli
from ordinaut.clock import FrozenClock

Worker = Callable[[], Awaitable[int]]


class Cli:
    """Runs ``ordinaut ARGS`` in-process on a thread; returns (exit code, stdout, stderr)."""

    def __init__(self, capsys: pytest.CaptureFixture[str], url: str) -> None:
        self.capsys = capsys
        self.url = url

    async def __call__(self, *argv: str) -> tuple[int, str, str]:
        code = await asyncio.to_thread(self.main, list(argv))
        out, err = self.capsys.readouterr()
        return code, out, err

    @staticmethod
    def main(argv: list[str]) -> int:
        try:
            return cli.main(argv)
        except SystemExit as exc:  # argparse's own exits
            return int(exc.code or 0)


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for key in list(os.environ):
        if key.startswith("ORDINAUT_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("ORDINAUT_HOME", str(tmp_path))
    return tmp_path


@pytest.fixture
def run(capsys: pytest.CaptureFixture[str], live_url: str, home: Path) -> Cli:
    return Cli(capsys, live_url)


async def test_login_then_create_list_show_and_control_a_task(
    run: Cli, agent: dict[str, Any], home: Path
) -> None:
    code, out, err = await run(
        "login", "--url", run.url, "--agent-id", agent["agent_id"], "--secret", agent["secret"]
    )
    assert code == 0, err
    assert "logged in" in out
    saved = home / "credentials.json"
    assert stat.S_IMODE(saved.stat().st_mode) == 0o600
    entry = json.loads(saved.read_text())["servers"][run.url]
    assert entry["agent_id"] == agent["agent_id"]
    assert entry["token"]

    task_file = home / "task.yaml"
    task_file.write_text(yaml.safe_dump(CRON_TASK))
    code, out, err = await run("tasks", "create", "-f", str(task_file))
    assert code == 0, err
    assert "every weekday at 08:00 Europe/Chisinau" in out
    assert "next  Tue 2026-03-03 08:00 EET  (2026-03-03 06:00:00Z)" in out
    json_file = home / "task.json"
    json_file.write_text(json.dumps({**CRON_TASK, "title": "Second"}))
    code, out, _ = await run("tasks", "create", "-f", str(json_file), "--json")
    second = json.loads(out)
    assert code == 0
    assert second["title"] == "Second"

    code, out, _ = await run("tasks", "list")
    assert code == 0
    assert out.splitlines()[0].split() == [
        *("ID", "TITLE", "STATUS", "SCHEDULE", "NEXT", "RUN", "LAST", "RUN", "FAILED", "24H")
    ]
    assert "Morning briefing" in out
    assert "Tue 2026-03-03 08:00 EET" in out
    code, out, _ = await run("tasks", "list", "--json", "--limit", "1")
    listed = json.loads(out)
    assert (len(listed["items"]), listed["total"]) == (1, 2)
    code, out, _ = await run("tasks", "list", "--search", "SECOND")
    assert code == 0
    assert "Second" in out
    assert "Morning briefing" not in out

    code, out, _ = await run("tasks", "show", second["id"])
    assert code == 0
    assert "next runs" in out
    assert "no runs yet" in out
    assert out.count("EET  (2026-03-") == 5
    code, out, _ = await run("tasks", "pause", second["id"])
    assert (code, out.strip()) == (0, f"task {second['id']} is paused")
    code, _, err = await run("tasks", "pause", second["id"])
    assert code == 5
    assert "cannot pause a task that is paused" in err
    code, out, _ = await run("tasks", "resume", second["id"], "--json")
    assert code == 0
    assert json.loads(out)["status"] == "active"
    code, _, _ = await run("tasks", "cancel", second["id"])
    assert code == 0
    code, _, err = await run("tasks", "show", "00000000-0000-0000-0000-000000000000")
    assert code == 3
    assert "not_found" in err


async def test_invalid_input_names_the_field_and_exits_2(
    run: Cli, agent: dict[str, Any], home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ORDINAUT_URL", run.url)
    monkeypatch.setenv("ORDINAUT_TOKEN", agent["token"])
    bad = home / "bad.yaml"
    bad.write_text(yaml.safe_dump({**CRON_TASK, "schedule_expr": "0 8 * * 9"}))
    code, out, err = await run("tasks", "create", "-f", str(bad))
    assert code == 2
    assert out == ""
    assert "invalid_schedule" in err
    assert "\n  schedule_expr: " in err
    code, _, err = await run("tasks", "create", "-f", str(home / "missing.yaml"))
    assert code == 2
    assert "cannot read" in err
    bad.write_text("- just\n- a list\n")
    code, _, err = await run("tasks", "create", "-f", str(bad))
    assert code == 2
    assert "mapping" in err
    good = home / "good.json"
    good.write_text(json.dumps(CRON_TASK))
    code, out, _ = await run("tasks", "create", "-f", str(good), "--dry-run")
    assert code == 0
    assert out.startswith("valid; first run 2026-03-03 06:00:00Z")
    code, out, _ = await run("tasks", "list")
    assert out.strip() == "no tasks"  # the dry run created nothing
    code, _, err = await run("events", "publish", "t", "--data", "{not json")
    assert code == 2
    assert "--data is not JSON" in err
    code, _, _ = await run("tasks", "create")
    assert code == 2  # argparse: -f is required


async def test_run_now_follow_runs_list_and_events(
    run: Cli,
    agent: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
    run_worker: Worker,
    pool: asyncpg.Pool,
) -> None:
    monkeypatch.setenv("ORDINAUT_URL", run.url)
    monkeypatch.setenv("ORDINAUT_TOKEN", agent["token"])
    (home := Path(os.environ["ORDINAUT_HOME"])).joinpath("ok.json").write_text(
        json.dumps(CRON_TASK)
    )
    code, out, _ = await run("tasks", "create", "-f", str(home / "ok.json"), "--json")
    task_id = json.loads(out)["id"]

    # --follow polls while the run is queued, then the worker runs it.
    follow = asyncio.create_task(
        run("tasks", "run-now", task_id, "--follow", "--interval", "0.05", "--timeout", "20")
    )
    for _ in range(200):
        if await pool.fetchval("SELECT count(*) FROM runs"):
            break
        await asyncio.sleep(0.02)
    await asyncio.sleep(0.2)  # a few polls see it queued
    assert await run_worker() == 1
    code, out, err = await follow
    assert code == 0, err
    assert ": queued (attempt 1)" in err
    assert ": succeeded (attempt 1)" in err
    assert "steps" in out
    assert "say   echo  succeeded" in out
    assert '{"text": "weather in Chisinau"}' in out

    code, out, _ = await run("runs", "list", "--task", task_id, "--json")
    (listed,) = json.loads(out)["items"]
    assert listed["status"] == "succeeded"
    code, out, _ = await run("runs", "show", listed["id"])
    assert code == 0
    assert out.startswith(f"run {listed['id']}  succeeded")
    code, out, _ = await run("runs", "list")
    assert "succeeded" in out
    assert "run_now" in out

    home.joinpath("bad.json").write_text(
        json.dumps({**CRON_TASK, "payload": FAILING_PAYLOAD, "max_retries": 0})
    )
    code, out, _ = await run("tasks", "create", "-f", str(home / "bad.json"), "--json")
    bad_id = json.loads(out)["id"]
    code, out, _ = await run("tasks", "run-now", bad_id, "--json")
    run_id = json.loads(out)["run_id"]
    code, _, err = await run("runs", "show", run_id, "--follow", "--timeout", "0.1")
    assert code == 7
    assert "still queued" in err
    assert await run_worker() == 1
    code, out, _ = await run("runs", "show", run_id, "--follow", "--json")
    assert code == 6
    assert json.loads(out)["status"] == "dead_letter"

    code, out, _ = await run("events", "publish", "orders.created", "--data", '{"id": 7}')
    assert code == 0
    assert "0 task(s) matched" in out
    code, out, _ = await run("events", "publish", "x", "--event-id", "e1", "--json")
    assert json.loads(out)["event_id"] == "e1"
    code, out, _ = await run("events", "publish", "x", "--event-id", "e1")
    assert "duplicate" in out


async def test_credentials_come_from_env_dev_file_or_nowhere(
    run: Cli, agent: dict[str, Any], home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    code, _, err = await run("tasks", "list", "--url", run.url)
    assert code == 4
    assert "ordinaut login" in err
    code, _, err = await run("tasks", "list", "--url", run.url, "--token", "nope")
    assert code == 4
    # `ordinaut dev`'s credential file, for its own URL, is used when nothing else is given.
    dev = {"url": run.url, "agent_id": agent["agent_id"], "agent_secret": agent["secret"]}
    (home / "credentials.json").write_text(json.dumps({**dev, "token": "stale"}))
    code, out, err = await run("tasks", "list")
    assert (code, out.strip()) == (0, "no tasks"), err
    monkeypatch.setattr(time, "sleep", lambda _: None)  # the client's retries, not the test's
    code, _, err = await run("tasks", "list", "--url", "http://127.0.0.1:9")
    assert code == 1
    assert "cannot reach" in err


def test_help_documents_exit_codes_once_and_examples_everywhere(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert Cli.main(["--help"]) == 0
    top = capsys.readouterr().out
    for code in range(8):
        assert f"\n  {code}  " in top
    assert "\n  4  not authenticated" in top
    for argv in (["tasks", "--help"], ["runs", "show", "--help"], ["login", "--help"]):
        assert Cli.main(argv) == 0
        out = capsys.readouterr().out
        assert "examples:" in out
        assert "\n  4  not authenticated" not in out  # the table lives in `ordinaut --help`
        assert "exit codes: listed once, in `ordinaut --help`" in out
    assert Cli.main(["tasks"]) == 2
    assert "create" in capsys.readouterr().err


def _walk(parser: argparse.ArgumentParser, path: str) -> Iterator[tuple[str, argparse.Action]]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _walk(sub, f"{path} {name}")
        elif not isinstance(action, argparse._HelpAction | argparse._VersionAction):
            yield path, action


def test_every_option_and_argument_has_help_text() -> None:
    missing = [
        f"{path} {action.option_strings or action.dest}"
        for path, action in _walk(cli.build_parser(), "ordinaut")
        if not action.help
    ]
    assert missing == []


async def test_the_file_format_in_create_help_is_a_task_the_api_accepts(
    run: Cli, agent: dict[str, Any], home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`tasks create --help` shows an example file: it must be a valid task, as shown."""
    monkeypatch.setenv("ORDINAUT_URL", run.url)
    monkeypatch.setenv("ORDINAUT_TOKEN", agent["token"])
    code, out, _ = await run("tasks", "create", "--help")
    assert code == 0
    block = out.split("('-' reads it from stdin):\n\n", 1)[1].split("\n\n", 1)[0]
    assert "schedule_expr:" in block
    assert "pipeline:" in block
    (home / "example.yaml").write_text(block)
    code, out, err = await run("tasks", "create", "-f", str(home / "example.yaml"), "--json")
    assert code == 0, err
    created = json.loads(out)
    assert (created["title"], created["schedule_expr"]) == ("Morning briefing", "0 8 * * 1-5")


async def test_a_file_that_does_not_parse_names_the_line_and_column(
    run: Cli, agent: dict[str, Any], home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ORDINAUT_URL", run.url)
    monkeypatch.setenv("ORDINAUT_TOKEN", agent["token"])
    broken = home / "broken.json"
    broken.write_text('{"title": "x",\n  "schedule_kind" "cron"}\n')
    code, out, err = await run("tasks", "create", "-f", str(broken))
    assert (code, out) == (2, "")
    assert f"{broken}: not valid JSON at line 2, column 19: Expecting ':' delimiter" in err
    broken = home / "broken.yaml"
    broken.write_text("title: x\nschedule_kind: cron\n  schedule_expr: '* * * * *'\n")
    code, out, err = await run(
        "tasks", "update", "00000000-0000-0000-0000-000000000000", "-f", str(broken)
    )
    assert code == 2
    assert f"{broken}: not valid YAML at line 3, column 16: mapping values" in err
    assert "neither JSON nor YAML" not in err


async def test_update_preview_delete_and_paused_tasks_have_no_next_runs(
    run: Cli, agent: dict[str, Any], home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ORDINAUT_URL", run.url)
    monkeypatch.setenv("ORDINAUT_TOKEN", agent["token"])
    (home / "task.yaml").write_text(yaml.safe_dump(CRON_TASK))
    code, out, _ = await run("tasks", "create", "-f", str(home / "task.yaml"), "--json")
    created = json.loads(out)
    task_id = created["id"]

    # update from flags: only those fields change (PATCH)
    code, out, err = await run(
        "tasks", "update", task_id, "--title", "Briefing at nine", "--schedule", "0 9 * * *"
    )
    assert code == 0, err
    assert f"updated task {task_id}  Briefing at nine (active): schedule_expr, title" in out
    assert "every day at 09:00 Europe/Chisinau" in out
    assert "next  Tue 2026-03-03 09:00 EET  (2026-03-03 07:00:00Z)" in out
    # from a file, with a flag overriding the file's field
    (home / "changes.yaml").write_text("priority: 2\nmax_retries: 7\n")
    code, out, err = await run(
        "tasks", "update", task_id, "-f", str(home / "changes.yaml"), "--priority", "3", "--json"
    )
    assert code == 0, err
    updated = json.loads(out)
    assert (updated["priority"], updated["max_retries"]) == (3, 7)
    assert (updated["title"], updated["timezone"]) == ("Briefing at nine", "Europe/Chisinau")
    assert updated["payload"] == created["payload"]
    code, _, err = await run("tasks", "update", task_id)
    assert code == 2
    assert "nothing to change" in err
    code, _, err = await run("tasks", "update", task_id, "--schedule", "0 9 * * 9")
    assert code == 2
    assert "schedule_expr" in err

    code, out, _ = await run("tasks", "preview", task_id, "--next", "3")
    assert code == 0
    assert out.count("EET  (2026-03-0") == 3
    assert "next runs" in out
    code, out, _ = await run(
        "tasks", "preview", "--schedule-kind", "cron", "--schedule", "30 7 * * 1",
        "--timezone", "Europe/Chisinau", "--next", "2",
    )  # fmt: skip
    assert code == 0
    assert "every Monday at 07:30 Europe/Chisinau" in out
    assert "Mon 2026-03-09 07:30 EET  (2026-03-09 05:30:00Z)" in out
    code, out, _ = await run("tasks", "preview", "-f", str(home / "task.yaml"), "--next", "1")
    assert code == 0
    assert "Tue 2026-03-03 08:00 EET" in out
    code, _, err = await run("tasks", "preview")
    assert code == 2
    assert "give a task id" in err

    # paused: the schedule stays, but nothing is listed as if it will run
    code, _, _ = await run("tasks", "pause", task_id)
    assert code == 0
    code, out, _ = await run("tasks", "list")
    assert "- (paused)" in out
    assert "EET" not in out
    code, out, _ = await run("tasks", "show", task_id)
    assert "nothing runs until it is resumed" in out
    assert "EET  (2026" not in out
    code, out, _ = await run("tasks", "show", task_id, "--json")
    assert json.loads(out)["next_fire_times"] == []
    code, out, _ = await run("tasks", "preview", task_id, "--next", "2")
    assert f"paused: no runs until `ordinaut tasks resume {task_id}`" in out
    assert "if resumed" in out
    assert "next runs" not in out
    code, out, _ = await run("tasks", "update", task_id, "--title", "Still paused")
    assert code == 0
    assert "no next runs while paused" in out
    assert "next  " not in out

    # delete: asks on a terminal, needs --yes elsewhere
    code, out, err = await run("tasks", "delete", task_id)
    assert code == 2
    assert "without --yes" in err
    assert "Still paused" in err
    code, out, _ = await run("tasks", "delete", task_id, "--yes")
    assert (code, out.strip()) == (0, f"deleted task {task_id}  Still paused")
    code, _, err = await run("tasks", "show", task_id)
    assert code == 3
    code, _, err = await run("tasks", "delete", task_id, "--yes")
    assert code == 3
    assert "not_found" in err


async def test_runs_list_dead_letters_by_title_then_retry_and_cancel(
    run: Cli,
    agent: dict[str, Any],
    home: Path,
    monkeypatch: pytest.MonkeyPatch,
    run_worker: Worker,
    clock: FrozenClock,
) -> None:
    monkeypatch.setenv("ORDINAUT_URL", run.url)
    monkeypatch.setenv("ORDINAUT_TOKEN", agent["token"])
    body = {**CRON_TASK, "title": "Flaky report", "payload": FAILING_PAYLOAD, "max_retries": 1}
    (home / "bad.json").write_text(json.dumps(body))
    code, out, _ = await run("tasks", "create", "-f", str(home / "bad.json"), "--json")
    task_id = json.loads(out)["id"]
    code, out, _ = await run("tasks", "run-now", task_id, "--json")
    run_id = json.loads(out)["run_id"]
    assert await run_worker() == 1  # attempt 1 fails, a retry is due after the backoff
    clock.advance(120)  # past the backoff (the token stays valid)
    assert await run_worker() == 1  # attempt 2 fails: past max_retries, dead-lettered

    code, out, _ = await run("tasks", "list", "--search", "flaky", "--json")
    (listed,) = json.loads(out)["items"]
    assert (listed["last_run_status"], listed["failures_24h"]) == ("dead_letter", 1)
    code, out, _ = await run("tasks", "list", "--search", "flaky")
    assert "dead_letter Mon 2026-03-02" in out
    assert out.rstrip().endswith("  1")

    code, out, _ = await run("runs", "list", "--status", "dead_letter")
    assert code == 0, out
    header, row = out.splitlines()
    assert header.split()[:3] == ["ID", "TASK", "STATUS"]
    assert row.startswith(f"{run_id}  Flaky report")
    assert "dead_letter" in row
    assert task_id not in out  # the title, not the task's UUID
    code, out, _ = await run("runs", "show", run_id)
    assert f"  task           Flaky report  ({task_id})" in out

    code, out, err = await run("runs", "retry", run_id)
    assert code == 0, err
    assert f"run {run_id} of Flaky report is queued again" in out
    code, out, _ = await run("runs", "list", "--status", "dead_letter")
    assert out.strip() == "no runs"
    code, out, err = await run("runs", "cancel", run_id)
    assert (code, out.strip()) == (0, f"run {run_id} of Flaky report is canceled"), err
    code, _, err = await run("runs", "cancel", run_id)
    assert code == 5, err
    code, _, err = await run("runs", "retry", "00000000-0000-0000-0000-000000000000")
    assert code == 3
    assert "not_found" in err


# --- labels ---------------------------------------------------------------------------------


async def _login_as(run: Cli, agent: dict[str, Any]) -> None:
    code, _, err = await run(
        "login", "--url", run.url, "--agent-id", agent["agent_id"], "--secret", agent["secret"]
    )
    assert code == 0, err


async def _label_ids(run: Cli, *flags: str) -> set[str]:
    code, out, err = await run("tasks", "list", "--json", *flags)
    assert code == 0, err
    return {t["id"] for t in json.loads(out)["items"]}


async def test_labels_on_create_update_list_and_show(
    run: Cli, agent: dict[str, Any], home: Path
) -> None:
    await _login_as(run, agent)
    task_file = home / "task.yaml"
    task_file.write_text(yaml.safe_dump({**CRON_TASK, "labels": {"from": "file"}}))
    code, out, err = await run("tasks", "create", "-f", str(task_file), "--json")
    assert code == 0, err
    filed = json.loads(out)
    assert filed["labels"] == {"from": "file"}
    code, out, err = await run(
        "tasks", "create", "-f", str(task_file), "--json",
        "--label", "user=ana", "--label", "kind=daily", "--label", "url=https://a.test/x=1",
    )  # fmt: skip
    assert code == 0, err
    ana = json.loads(out)
    # the flags replace the file's labels; a value keeps every '=' after the first
    assert ana["labels"] == {"user": "ana", "kind": "daily", "url": "https://a.test/x=1"}

    assert await _label_ids(run, "--label", "user=ana") == {ana["id"]}
    assert await _label_ids(run, "--label", "user=ana", "--label", "kind=weekly") == set()
    assert await _label_ids(run, "--label", "from=file", "--all") == {filed["id"]}

    code, out, _ = await run("tasks", "show", ana["id"])
    assert code == 0
    assert "labels      kind=daily, url=https://a.test/x=1, user=ana" in out

    code, out, err = await run("tasks", "update", ana["id"], "--label", "user=bo", "--json")
    assert code == 0, err
    assert json.loads(out)["labels"] == {"user": "bo"}  # the whole map is replaced
    assert await _label_ids(run, "--label", "user=bo") == {ana["id"]}
    code, out, err = await run("tasks", "update", ana["id"], "--clear-labels", "--json")
    assert code == 0, err
    assert json.loads(out)["labels"] == {}
    code, out, err = await run("tasks", "update", filed["id"], "--title", "renamed", "--json")
    assert json.loads(out)["labels"] == {"from": "file"}  # untouched without label flags


async def test_malformed_labels_are_refused(run: Cli, agent: dict[str, Any], home: Path) -> None:
    await _login_as(run, agent)
    task_file = home / "task.yaml"
    task_file.write_text(yaml.safe_dump(CRON_TASK))
    code, _, err = await run("tasks", "list", "--label", "user")
    assert code == 2
    assert "KEY=VALUE" in err
    code, _, err = await run("tasks", "create", "-f", str(task_file), "--label", "Bad=x")
    assert code == 2, err
    assert "labels" in err  # the API's 422, field by field
    code, _, err = await run("tasks", "list", "--label", "Bad=x")
    assert code == 2, err
    assert "label" in err
    code, _, err = await run(
        "tasks", "update", "00000000-0000-4000-8000-000000000000",
        "--label", "a=b", "--clear-labels",
    )  # fmt: skip
    assert code == 2
    assert "not both" in err
