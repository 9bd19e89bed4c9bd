"""``ordinaut dev`` as a person runs it: embedded servers, real child processes, Ctrl-C.

Each run starts its own embedded PostgreSQL and Redis under a temporary ORDINAUT_HOME (no
external URLs are passed), so these tests also prove that the data survives a restart.
"""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import json
import logging
import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import httpx
import psutil
import pytest

from ordinaut.cli import dev
from ordinaut.cli.common import CommandError
from ordinaut.config import load_settings
from ordinaut.pipeline.tools.egress import Allowlist

START_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 30.0
BANNER = "Ordinaut is running."


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class DevRun:
    proc: subprocess.Popen[bytes]
    home: Path
    port: int
    stdout: Path
    stderr: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def output(self) -> str:
        return self.stdout.read_text(errors="replace")

    def logs(self) -> str:
        return self.stderr.read_text(errors="replace")[-6000:]

    def wait_for_banner(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while BANNER not in self.output():
            code = self.proc.poll()
            assert code is None, f"ordinaut dev exited {code} before it was ready:\n{self.logs()}"
            assert time.monotonic() < deadline, f"no banner in time:\n{self.logs()}"
            time.sleep(0.2)

    def stop(self, sig: signal.Signals = signal.SIGINT) -> int:
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            pytest.fail(f"ordinaut dev did not stop within {STOP_TIMEOUT_S} s:\n{self.logs()}")

    def credentials(self) -> dict[str, str]:
        data: dict[str, str] = json.loads((self.home / "credentials.json").read_text())
        return data


@pytest.fixture
def home() -> Iterator[Path]:
    # Not under pytest's tmp_path: pytest resets /tmp/pytest-of-<user> to 0700 whenever a session
    # starts, and as root pgserver runs PostgreSQL as its own user, who must reach the data.
    base = Path(tempfile.mkdtemp(prefix="ordinaut-dev-test-"))
    base.chmod(0o755)
    try:
        yield base / "home"
    finally:
        kill_leftovers(base)
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def start(home: Path) -> Iterator[Callable[..., DevRun]]:
    """Start ``ordinaut dev`` on free ports; every run is stopped (or killed) at teardown."""
    runs: list[DevRun] = []
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORDINAUT_")}
    env.update(
        ORDINAUT_HOME=str(home),
        ORDINAUT_SCHEDULER_METRICS_PORT=str(free_port()),
        ORDINAUT_WORKER_METRICS_PORT=str(free_port()),
        ORDINAUT_LOG_JSON="false",
    )

    def launch(*extra: str, **more_env: str) -> DevRun:
        n = len(runs)
        out, err = home.parent / f"stdout-{n}.txt", home.parent / f"stderr-{n}.txt"
        with out.open("wb") as o, err.open("wb") as e:
            proc = subprocess.Popen(
                [sys.executable, "-m", "ordinaut.cli", "dev", "--port", str(port), *extra],
                env={**env, **more_env},
                cwd=home.parent,
                stdin=subprocess.DEVNULL,
                stdout=o,
                stderr=e,
            )
        run = DevRun(proc, home, port, out, err)
        runs.append(run)
        return run

    yield launch
    for run in runs:
        if run.proc.poll() is None:
            run.proc.kill()
            run.proc.wait()


def processes_using(path: Path) -> list[psutil.Process]:
    """Processes whose command line mentions ``path`` (postmaster -D, redis-server conf)."""
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        cmdline = proc.info.get("cmdline") or []
        if any(str(path) in part for part in cmdline) and proc.pid != os.getpid():
            found.append(proc)
    return found


def kill_leftovers(path: Path) -> None:
    for proc in processes_using(path):
        with contextlib.suppress(psutil.Error):
            proc.kill()


def assert_nothing_left_running(home: Path) -> None:
    leftovers = processes_using(home)
    assert not leftovers, [p.info.get("cmdline") for p in leftovers]
    assert not (home / "pg" / "postmaster.pid").exists()


def child_pid(banner: str, name: str) -> int:
    match = re.search(rf"\b{name} \((\d+)\)", banner)
    assert match, banner
    return int(match.group(1))


def wait_healthy(url: str) -> httpx.Response:
    """GET /health until it answers 200 (workers and the scheduler report in shortly after)."""
    deadline = time.monotonic() + 30
    while True:
        response = httpx.get(f"{url}/health", timeout=5)
        if response.status_code == 200 or time.monotonic() > deadline:
            return response
        time.sleep(0.5)


@pytest.mark.e2e
def test_dev_starts_everything_saves_a_working_credential_and_stops_cleanly(
    start: Callable[..., DevRun],
) -> None:
    run = start()
    run.wait_for_banner()
    creds = run.credentials()
    assert set(creds) == {"url", "agent_id", "agent_secret", "token"}
    assert creds["url"] == run.url
    assert stat.S_IMODE((run.home / "credentials.json").stat().st_mode) == 0o600

    banner = run.output()
    for line in (run.url, f"{run.url}/docs", creds["agent_id"], str(run.home / "credentials.json")):
        assert line in banner
    assert "curl " in banner
    # stdout is a file here, not a terminal: neither the secret nor a token is in any output
    for credential in (creds["agent_secret"], creds["token"]):
        assert credential not in banner
        assert credential not in run.logs()
    # Each component is a real process of its own.
    pids = {child_pid(banner, name) for name in ("api", "scheduler", "worker")}
    assert len(pids) == 3
    assert all(psutil.pid_exists(p) for p in pids)

    health = wait_healthy(run.url)
    assert health.status_code == 200, health.text
    auth = {"Authorization": f"Bearer {creds['token']}"}
    agents = httpx.get(f"{run.url}/agents", headers=auth, timeout=10)
    assert agents.status_code == 200, agents.text
    assert creds["agent_id"] in agents.text
    assert httpx.get(f"{run.url}/agents", timeout=10).status_code == 401
    # The saved secret is a real one: it can be exchanged for a token like any client would.
    exchanged = httpx.post(
        f"{run.url}/agents/auth/token",
        json={"agent_id": creds["agent_id"], "agent_secret": creds["agent_secret"]},
        timeout=10,
    )
    assert exchanged.status_code == 200, exchanged.text

    assert run.stop(signal.SIGINT) == 0, run.logs()
    # API, scheduler and worker each took SIGTERM as a clean stop (dev reports anything else).
    assert "exited with code" not in run.logs()
    assert_nothing_left_running(run.home)
    assert not any(psutil.pid_exists(p) and psutil.Process(p).status() != "zombie" for p in pids)


@pytest.mark.e2e
def test_a_second_run_reuses_the_data_and_the_admin(start: Callable[..., DevRun]) -> None:
    first = start()
    first.wait_for_banner()
    before = first.credentials()
    created = httpx.post(
        f"{first.url}/tasks",
        headers={"Authorization": f"Bearer {before['token']}"},
        json={
            "title": "survives a restart",
            "schedule_kind": "cron",
            "schedule_expr": "0 0 1 1 *",
            "payload": {"pipeline": [{"id": "hello", "uses": "echo", "with": {"msg": "hi"}}]},
        },
        timeout=10,
    )
    assert created.status_code == 201, created.text
    task_id = created.json()["id"]
    assert first.stop(signal.SIGTERM) == 0, first.logs()
    assert_nothing_left_running(first.home)

    second = start("--workers", "2", "--no-scheduler")
    second.wait_for_banner()
    after = second.credentials()
    assert after["agent_id"] == before["agent_id"]
    assert after["agent_secret"] == before["agent_secret"]
    assert after["token"] != before["token"]
    banner = second.output()
    assert "worker-1 (" in banner
    assert "worker-2 (" in banner
    assert "scheduler (" not in banner
    auth = {"Authorization": f"Bearer {after['token']}"}
    response = httpx.get(f"{second.url}/agents", headers=auth, timeout=10)
    assert response.status_code == 200, response.text
    task = httpx.get(f"{second.url}/tasks/{task_id}", headers=auth, timeout=10)
    assert task.status_code == 200, task.text
    assert task.json()["title"] == "survives a restart"
    assert "created admin agent" not in second.logs()
    assert second.stop(signal.SIGINT) == 0, second.logs()
    assert_nothing_left_running(second.home)


@pytest.mark.e2e
def test_dev_exits_non_zero_when_the_api_dies_and_still_cleans_up(
    start: Callable[..., DevRun],
) -> None:
    run = start()
    run.wait_for_banner()
    os.kill(child_pid(run.output(), "api"), signal.SIGKILL)
    try:
        code = run.proc.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        pytest.fail(f"ordinaut dev kept running without its API:\n{run.logs()}")
    assert code == 1
    assert "api exited" in run.logs()
    assert_nothing_left_running(run.home)


# --- the pieces dev.py relies on, without starting anything ---------------------------------


def test_credentials_are_written_atomically_and_only_for_the_owner(tmp_path: Path) -> None:
    path = tmp_path / "credentials.json"
    leftover = tmp_path / "credentials.json.tmp"
    leftover.write_text("stale")
    leftover.chmod(0o644)
    creds = {"url": "u", "agent_id": "a", "agent_secret": "s", "token": "t"}
    dev.write_credentials(path, creds)
    assert json.loads(path.read_text()) == creds
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert not leftover.exists()
    assert dev.read_credentials(path) == creds


@pytest.mark.parametrize("text", [None, "", "not json", "[1, 2]"])
def test_unreadable_credentials_mean_none(tmp_path: Path, text: str | None) -> None:
    path = tmp_path / "credentials.json"
    if text is not None:
        path.write_text(text)
    assert dev.read_credentials(path) is None


def test_dead_pids_are_dropped_from_pgservers_handle_list(tmp_path: Path) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    handles = tmp_path / ".handle_pids.json"
    handles.write_text(json.dumps([os.getpid(), dead.pid]))
    dev.forget_dead_pg_handles(tmp_path)
    assert json.loads(handles.read_text()) == [os.getpid()]


def test_port_free() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert not dev.port_free("127.0.0.1", port)
    assert dev.port_free("127.0.0.1", free_port())


@pytest.mark.e2e
def test_dev_refuses_a_port_in_use_before_starting_anything(
    start: Callable[..., DevRun], home: Path
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        run = start("--port", str(taken.getsockname()[1]))
        assert run.proc.wait(timeout=60) == 1
    assert "is in use" in run.logs()
    assert not (home / "pg").exists()


@pytest.mark.e2e
def test_a_second_dev_does_not_die_on_metrics_ports_another_one_holds(
    start: Callable[..., DevRun],
) -> None:
    """The scheduler and worker metrics ports are held (as by a first dev): this dev moves its
    metrics elsewhere, and says it is running only once the scheduler ticked and the worker
    sent a heartbeat."""
    with socket.socket() as held_scheduler, socket.socket() as held_worker:
        for sock in (held_scheduler, held_worker):
            sock.bind(("127.0.0.1", 0))
            sock.listen()
        held = {held_scheduler.getsockname()[1], held_worker.getsockname()[1]}
        run = start(
            ORDINAUT_SCHEDULER_METRICS_PORT=str(held_scheduler.getsockname()[1]),
            ORDINAUT_WORKER_METRICS_PORT=str(held_worker.getsockname()[1]),
        )
        run.wait_for_banner()
        banner = run.output()
        pids = {name: child_pid(banner, name) for name in ("api", "scheduler", "worker")}
        assert all(psutil.pid_exists(pid) for pid in pids.values())
        ports = {name: int(port) for name, port in re.findall(r"(scheduler|worker) :(\d+)", banner)}
        assert set(ports) == {"scheduler", "worker"}
        assert not held & set(ports.values())
        assert "is in use (another ordinaut dev?)" in run.logs()
        for port in ports.values():
            metrics = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5)
            assert metrics.status_code == 200
            assert "ordinaut_" in metrics.text
        health = httpx.get(f"{run.url}/health", timeout=10).json()["components"]
        assert health["scheduler"]["status"] == "healthy", health
        assert health["workers"]["live"] >= 1, health
        assert run.stop(signal.SIGINT) == 0, run.logs()
    assert "exited with code" not in run.logs()
    assert_nothing_left_running(run.home)


def _stack(tmp_path: Path, **flags: object) -> dev.DevStack:
    args = argparse.Namespace(
        workers=flags.get("workers", 1),
        no_scheduler=flags.get("no_scheduler", False),
        allow_loopback_egress=flags.get("allow_loopback_egress", False),
    )
    settings = load_settings(
        {},
        home=str(tmp_path),
        scheduler_metrics_port=flags.get("scheduler_port", free_port()),
        worker_metrics_port=flags.get("worker_port", free_port()),
        egress_allowlist=("api.example.com:443",),
    )
    return dev.DevStack(settings, args, dev.Signals())


def test_metrics_ports_in_use_are_replaced_by_free_ones(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        stack = _stack(tmp_path, workers=3, scheduler_port=port, worker_port=port)
        ports = stack.pick_metrics_ports()
    assert list(ports) == ["scheduler", "worker-1", "worker-2", "worker-3"]
    assert port not in ports.values()
    assert len(set(ports.values())) == 4
    assert _stack(tmp_path, worker_port=0, no_scheduler=True).pick_metrics_ports() == {"worker": 0}


def test_metrics_on_an_address_this_machine_lacks_fail_the_start_clearly(tmp_path: Path) -> None:
    stack = _stack(tmp_path)
    # 192.0.2.1 (TEST-NET-1) is on no interface here: binding fails locally, nothing is sent.
    stack.settings = stack.settings.replace(metrics_host="192.0.2.1")
    with pytest.raises(CommandError, match="cannot serve metrics on 192.0.2.1"):
        stack.pick_metrics_ports()


def test_dev_is_not_ready_while_a_child_is_dead(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A worker that died at start (a port, a bad setting) fails the start: no banner."""
    stack = _stack(tmp_path, no_scheduler=True)
    sleeper = [sys.executable, "-c", "import time; time.sleep(60)"]
    api = dev.Child("api", sleeper, essential=True, proc=subprocess.Popen(sleeper, text=True))
    dead = [sys.executable, "-c", "raise SystemExit(3)"]
    worker = dev.Child("worker", dead, proc=subprocess.Popen(dead, text=True))
    worker.proc.wait()  # type: ignore[union-attr]
    stack.children = [api, worker]
    monkeypatch.setattr(dev, "health_live", lambda base: True)
    try:
        with caplog.at_level(logging.ERROR, logger="ordinaut.dev"):
            assert stack.wait_until_ready() is False
    finally:
        api.proc.kill()  # type: ignore[union-attr]
        api.proc.wait()  # type: ignore[union-attr]
    assert "worker exited with code 3 during start-up" in caplog.text


def test_allow_loopback_egress_opens_loopback_only(tmp_path: Path) -> None:
    closed = Allowlist.parse(
        _stack(tmp_path).child_env().get("ORDINAUT_EGRESS_ALLOWLIST", "").split(",")
    )
    env = _stack(tmp_path, allow_loopback_egress=True).child_env()
    allow = Allowlist.parse(env["ORDINAUT_EGRESS_ALLOWLIST"].split(","))
    for host, ip in (("127.0.0.1", "127.0.0.1"), ("localhost", "127.0.0.1"), ("::1", "::1")):
        assert allow.allows(host, 8765, ipaddress.ip_address(ip))
        assert not closed.allows(host, 8765, ipaddress.ip_address(ip))
    assert allow.allows("api.example.com", 443)  # the operator's own entries are kept
    for ip in ("10.0.0.1", "169.254.169.254", "192.168.1.1"):
        assert not allow.allows(ip, 80, ipaddress.ip_address(ip))


def _banner_stack(tmp_path: Path) -> SimpleNamespace:
    return SimpleNamespace(
        pg=None,
        redis=None,
        children=[],
        settings=load_settings({}),
        home=tmp_path,
        allow_loopback_egress=False,
    )


CREDS = {
    "url": "http://127.0.0.1:1",
    "agent_id": "a-1",
    "agent_secret": "s3cr3t",
    "token": "tok-XYZ123",
}


def test_the_banner_names_the_credential_file_and_never_prints_the_token(tmp_path: Path) -> None:
    text = dev.banner(_banner_stack(tmp_path), CREDS, show_secret=False)  # type: ignore[arg-type]
    assert str(tmp_path / "credentials.json") in text
    assert "a-1" in text
    assert "s3cr3t" not in text
    assert "tok-XYZ123" not in text
    assert "TOKEN=$(" in text  # read from the file, not pasted into the output


def test_the_secret_is_shown_only_once_on_a_terminal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shown = dev.banner(_banner_stack(tmp_path), CREDS, show_secret=True)  # type: ignore[arg-type]
    assert "s3cr3t" in shown
    monkeypatch.setattr(sys.stdout, "isatty", lambda: False)
    assert not dev.show_secret(created=True)
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    assert dev.show_secret(created=True)
    assert not dev.show_secret(created=False)
