"""The ``ordinaut`` command line: parser, help, exit codes and one-line errors."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator

import pytest

from ordinaut import __version__, cli
from ordinaut.auth import SCOPES
from ordinaut.cli import agents, common, processes

COMMANDS = ("dev", "api", "scheduler", "worker", "migrate", "agents")


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No ORDINAUT_* variable of the machine running the tests leaks into these."""
    for key in list(os.environ):
        if key.startswith("ORDINAUT_"):
            monkeypatch.delenv(key)


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """Commands install a root log handler on the stream of the moment (pytest's capture)."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def run_main(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    try:
        code = cli.main(list(argv))
    except SystemExit as exc:  # argparse's own exits (--help, --version, bad flags)
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def test_help_lists_every_command_with_examples_and_exit_codes(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, _ = run_main(capsys, "--help")
    assert code == 0
    for command in COMMANDS:
        assert f"\n    {command} " in out
    assert "examples:" in out
    assert "exit codes:" in out
    for exit_code in ("0", "1", "2"):
        assert f"\n  {exit_code}  " in out


@pytest.mark.parametrize(
    "argv",
    [["dev"], ["api"], ["scheduler"], ["worker"], ["migrate"], ["agents"], ["agents", "create"]],
)
def test_every_command_has_its_own_help_with_examples(
    capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    code, out, _ = run_main(capsys, *argv, "--help")
    assert code == 0
    assert out.startswith(f"usage: ordinaut {' '.join(argv)}")
    assert f"examples:\n  ordinaut {argv[0]}" in out


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_main(capsys, "--version")
    assert (code, out.strip()) == (0, f"ordinaut {__version__}")


def test_no_command_prints_help_and_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_main(capsys)
    assert code == 2
    assert "usage: ordinaut" in err


def test_agents_without_a_subcommand_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_main(capsys, "agents")
    assert code == 2
    assert "create" in err


@pytest.mark.parametrize(
    "argv",
    [
        ["api", "--port", "70000"],
        ["api", "--port", "http"],
        ["dev", "--workers", "0"],
        ["worker", "--concurrency", "-1"],
        ["scheduler", "--metrics-port", "-5"],
        ["frobnicate"],
    ],
)
def test_bad_flags_exit_2(capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    code, _, err = run_main(capsys, *argv)
    assert code == 2
    assert "error:" in err


@pytest.mark.parametrize(
    "argv", [["api"], ["scheduler"], ["worker"], ["migrate"], ["agents", "create", "x"]]
)
def test_missing_database_url_is_one_line_and_exit_2(
    capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    code, out, err = run_main(capsys, *argv)
    assert code == 2
    assert out == ""
    assert err.count("\n") == 1
    assert err.startswith("ordinaut: error: ORDINAUT_DATABASE_URL is not set")


def test_a_bad_environment_value_is_one_line_and_exit_2(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ORDINAUT_API_PORT", "eighty")
    code, _, err = run_main(capsys, "api")
    assert code == 2
    assert err == "ordinaut: error: ORDINAUT_API_PORT: cannot read 'eighty' as int\n"


def test_an_unknown_log_level_exits_2(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ORDINAUT_DATABASE_URL", "postgresql://127.0.0.1:1/x")
    monkeypatch.setenv("ORDINAUT_LOG_LEVEL", "loud")
    code, _, err = run_main(capsys, "migrate")
    assert code == 2
    assert "ORDINAUT_LOG_LEVEL" in err


def test_flags_override_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORDINAUT_API_PORT", "9000")
    args = cli.build_parser().parse_args(["api", "--port", "9100", "--host", "0.0.0.0"])
    settings = common.settings_from(args)
    assert (settings.api_host, settings.api_port) == ("0.0.0.0", 9100)
    args = cli.build_parser().parse_args(["worker", "--concurrency", "3"])
    assert common.settings_from(args).worker_concurrency == 3


def test_an_unreachable_database_is_one_line_exit_1_and_hides_the_password(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Port 1 on loopback: nothing listens there, so the connection is refused at once.
    monkeypatch.setenv("ORDINAUT_DATABASE_URL", "postgresql://me:hunter2@127.0.0.1:1/ordinaut")
    monkeypatch.setenv("ORDINAUT_DB_CONNECT_TIMEOUT_S", "2")
    code, _, err = run_main(capsys, "migrate")
    assert code == 1
    assert err.startswith("ordinaut: error: cannot reach the database at ")
    assert "me:***@127.0.0.1:1" in err
    assert "hunter2" not in err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://u:secret@db:5432/x", "postgresql://u:***@db:5432/x"),
        ("postgresql://u@db/x", "postgresql://u@db/x"),
        ("postgresql://postgres:@/postgres?host=/tmp/s", "postgresql://postgres:@/postgres?host=/tmp/s"),
    ],
)  # fmt: skip
def test_redact_hides_only_the_password(url: str, shown: str) -> None:
    assert common.redact(url) == shown


def test_scopes_default_admin_and_explicit() -> None:
    assert agents.parse_scopes(None, admin=False) == [s for s in SCOPES if s != "admin"]
    assert agents.parse_scopes(None, admin=True) == list(SCOPES)
    assert agents.parse_scopes("runs:read, tasks:read,runs:read", admin=False) == [
        "runs:read",
        "tasks:read",
    ]


@pytest.mark.parametrize("raw", ["tasks:read,root", "", " , "])
def test_bad_scopes_exit_2(raw: str) -> None:
    with pytest.raises(common.CommandError) as excinfo:
        agents.parse_scopes(raw, admin=False)
    assert excinfo.value.code == 2


def test_a_metrics_port_in_use_is_a_clear_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(common.CommandError) as excinfo:
            processes.serve_metrics(port)
    assert f"127.0.0.1:{port}" in excinfo.value.message
    assert "--metrics-port" in excinfo.value.message


def test_metrics_port_0_serves_nothing() -> None:
    processes.serve_metrics(0)  # would raise or bind if it tried


async def test_first_signal_sets_stop_and_the_body_returns() -> None:
    seen: list[str] = []

    async def body(stop: asyncio.Event) -> None:
        os.kill(os.getpid(), signal.SIGTERM)
        await asyncio.wait_for(stop.wait(), 5)
        seen.append("stopped")

    await processes.run_until_signalled(body)
    assert seen == ["stopped"]
    # The handlers are gone again: the loop no longer owns SIGTERM.
    assert asyncio.get_running_loop().remove_signal_handler(signal.SIGTERM) is False


async def test_a_second_signal_cancels_a_body_that_ignores_stop() -> None:
    async def body(stop: asyncio.Event) -> None:
        os.kill(os.getpid(), signal.SIGINT)
        await asyncio.wait_for(stop.wait(), 5)
        os.kill(os.getpid(), signal.SIGINT)
        await asyncio.sleep(30)

    with pytest.raises(common.CommandError, match="second signal"):
        await processes.run_until_signalled(body)


# What `ordinaut --help` must not import: the servers, the database and Redis drivers, the
# embedded servers, and the REST client (httpx and pydantic: a quarter of a second on its own).
HEAVY = (
    "fastapi",
    "asyncpg",
    "uvicorn",
    "redis",
    "pgserver",
    "ordinaut.embedded",
    "httpx",
    "pydantic",
    "ordinaut.client",
)


def test_help_is_fast_because_heavy_modules_load_lazily() -> None:
    # Every command group's parser is built; no command runs.
    code = (
        "import contextlib, io, sys\n"
        "from ordinaut.cli import main\n"
        "with contextlib.suppress(SystemExit), contextlib.redirect_stdout(io.StringIO()):\n"
        "    main(['--help'])\n"
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "[]"


def test_runs_as_python_dash_m() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "ordinaut.cli", "--version"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (out.returncode, out.stdout.strip()) == (0, f"ordinaut {__version__}")


def test_the_api_process_keeps_its_start_up_objects_out_of_every_collection() -> None:
    """`ordinaut api` freezes what create_app built before serving, as the worker and the
    scheduler do: full collections then no longer walk the whole app under load."""
    code = (
        "import gc, uvicorn\n"
        "from ordinaut.cli import main\n"
        "def run(self):\n"
        "    print(gc.get_freeze_count() > 10_000, gc.get_threshold())\n"
        "uvicorn.Server.run = run\n"
        "main(['api', '--port', '0'])\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORDINAUT_")}
    env["ORDINAUT_DATABASE_URL"] = "postgresql://127.0.0.1:1/never-connected"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "True (50000, 20, 20)"
