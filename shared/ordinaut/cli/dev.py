"""``ordinaut dev``: the whole system on one machine with nothing installed but Python.

Embedded PostgreSQL and Redis keep their data under ``settings.home`` (default ``.ordinaut/``),
so a second run sees the first run's tasks. The API, scheduler and workers run as real child
processes (``python -m ordinaut.cli api`` and so on), exactly as they run anywhere else.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from types import FrameType
from typing import IO, TYPE_CHECKING, Any

from ordinaut.cli.common import (
    EXIT_FAILURE,
    EXIT_OK,
    CommandError,
    SubParsers,
    configure_logging,
    database_errors,
    port_number,
    process_count,
    settings_from,
    subparser,
)
from ordinaut.config import Settings

if TYPE_CHECKING:
    from ordinaut.embedded import EmbeddedPostgres, EmbeddedRedis

log = logging.getLogger("ordinaut.dev")

ADMIN_NAME = "dev-admin"
READY_TIMEOUT_S = 60.0
# --allow-loopback-egress: what http.request may then reach on this machine (the examples'
# stub services); everything else internal stays refused.
LOOPBACK_NETWORKS = ("127.0.0.0/8", "::1/128")
# Children follow the database's clock through an estimated offset; a report this much older
# than the moment they were started still counts as theirs.
SKEW = timedelta(seconds=1)
STOP_TIMEOUT_S = 20.0  # a worker finishing or releasing in-flight runs gets this long
POLL_S = 0.2


@dataclass
class Child:
    """One supervised process; ``essential`` means dev stops when it dies (the API)."""

    name: str
    argv: list[str]
    essential: bool = False
    metrics_port: int = 0
    proc: subprocess.Popen[str] | None = None
    reported: bool = False
    threads: list[threading.Thread] = field(default_factory=list)

    @property
    def pid(self) -> int:
        return self.proc.pid if self.proc else 0

    def exit_code(self) -> int | None:
        return None if self.proc is None else self.proc.poll()


class Signals:
    """SIGINT/SIGTERM set ``stop``; a second one during shutdown sets ``force`` (kill now)."""

    def __init__(self) -> None:
        self.stop = threading.Event()
        self.force = threading.Event()
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.stop.is_set():
            self.force.set()
        self.stop.set()

    def __enter__(self) -> Signals:
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def register(sub: SubParsers[argparse.ArgumentParser]) -> None:
    p = subparser(
        sub,
        "dev",
        "run everything locally: embedded PostgreSQL + Redis, API, scheduler, worker",
        "Start a complete Ordinaut on this machine with nothing installed but Python: embedded\n"
        "PostgreSQL and Redis with data under ORDINAUT_HOME (default .ordinaut/) that survives\n"
        "restarts, migrations applied, the API, scheduler and workers as child processes, and\n"
        "an admin credential saved to .ordinaut/credentials.json (only its path is printed;\n"
        "the secret is shown once, on a terminal, when the admin is created). Set\n"
        "ORDINAUT_DATABASE_URL / ORDINAUT_REDIS_URL to use external servers instead.\n"
        "Ctrl-C stops everything.",
        "  ordinaut dev\n  ordinaut dev --port 9000 --workers 2\n  ordinaut dev --no-scheduler\n"
        "  ordinaut dev --allow-loopback-egress     for examples/ (stub services on 127.0.0.1)",
    )
    p.add_argument(
        "--port",
        type=port_number,
        metavar="PORT",
        help="API port (default: ORDINAUT_API_PORT or 8080)",
    )
    p.add_argument(
        "--workers",
        type=process_count,
        default=1,
        metavar="N",
        help="worker processes (default: 1)",
    )
    p.add_argument("--no-scheduler", action="store_true", help="do not start the scheduler process")
    p.add_argument(
        "--allow-loopback-egress",
        action="store_true",
        help="let http.request steps reach 127.0.0.0/8 and ::1 (the examples' stub services); "
        "other internal addresses stay refused",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run ``ordinaut dev`` until a signal; returns the exit code."""
    settings = settings_from(args)
    if "ORDINAUT_LOG_JSON" not in os.environ:
        # A person reads this terminal: text logs unless JSON was asked for explicitly.
        settings = settings.replace(log_json=False)
    configure_logging(settings)
    # pgserver logs every pg_ctl command line at INFO; only its warnings are worth a line here.
    logging.getLogger("pgserver").setLevel(logging.WARNING)
    with Signals() as signals:
        return DevStack(settings, args, signals).run()


class DevStack:
    def __init__(self, settings: Settings, args: argparse.Namespace, signals: Signals) -> None:
        self.settings = settings
        self.signals = signals
        self.home = Path(settings.home).expanduser().resolve()
        self.workers: int = args.workers
        self.scheduler: bool = not args.no_scheduler
        self.allow_loopback_egress: bool = bool(getattr(args, "allow_loopback_egress", False))
        self.since: Any = None  # the database's clock when the children started
        self.pg: EmbeddedPostgres | None = None
        self.redis: EmbeddedRedis | None = None
        self.children: list[Child] = []
        probe_host = settings.api_host if settings.api_host not in ("0.0.0.0", "::") else None
        self.base = f"http://{probe_host or '127.0.0.1'}:{settings.api_port}"
        self.url = settings.public_url.rstrip("/") or self.base
        self.admin_created = False

    # --- the whole life cycle --------------------------------------------------------------

    def run(self) -> int:
        try:
            creds = self.start()
            if creds is None or self.signals.stop.is_set():
                return EXIT_OK
            self.start_children()
            if not self.wait_until_ready():
                return EXIT_OK if self.signals.stop.is_set() else EXIT_FAILURE
            print(banner(self, creds, show_secret=show_secret(self.admin_created)), flush=True)
            return self.supervise()
        finally:
            self.stop_children()
            self.stop_servers()

    def start(self) -> dict[str, str] | None:
        """Servers up, database migrated, admin credential saved; None if a signal came first."""
        s = self.settings
        if not port_free(s.api_host, s.api_port):
            raise CommandError(
                f"port {s.api_port} on {s.api_host} is in use (another ordinaut dev?); "
                "choose another with --port"
            )
        self.metrics_ports = self.pick_metrics_ports()
        try:
            self.home.mkdir(parents=True, exist_ok=True)
            self.start_servers()
        except (OSError, RuntimeError, subprocess.SubprocessError) as exc:
            raise CommandError(f"could not start the embedded servers: {exc}") from None
        if self.signals.stop.is_set():
            return None
        with database_errors(self.settings):
            try:
                creds, self.admin_created = asyncio.run(
                    prepare_database(self.settings, self.home, self.url)
                )
                return creds
            except RuntimeError as exc:  # a migration file changed after it was applied
                raise CommandError(str(exc)) from None

    # --- PostgreSQL and Redis --------------------------------------------------------------

    def start_servers(self) -> None:
        # Imported here: the parser imports this module for every command.
        from ordinaut.embedded import EmbeddedPostgres, EmbeddedRedis

        settings = self.settings
        database_url, redis_url = settings.database_url, settings.redis_url
        if not database_url:
            pgdata = self.home / "pg"
            forget_dead_pg_handles(pgdata)
            log.info("starting embedded PostgreSQL", extra={"data": str(pgdata)})
            self.pg = EmbeddedPostgres(pgdata)
            database_url = self.pg.start()
        if not redis_url:
            redis_dir = self.home / "redis"
            stop_leftover_redis(redis_dir / "redis.conf")
            log.info("starting embedded Redis", extra={"data": str(redis_dir)})
            self.redis = EmbeddedRedis(redis_dir)
            redis_url = self.redis.start()
        self.settings = settings.replace(database_url=database_url, redis_url=redis_url)

    def stop_servers(self) -> None:
        if self.redis is not None:
            self.redis.stop()
            self.redis = None
        if self.pg is not None:
            self.pg.stop()
            self.pg = None

    # --- the API, scheduler and worker processes -------------------------------------------

    def pick_metrics_ports(self) -> dict[str, int]:
        """A metrics port for the scheduler and each worker: the configured one when it is
        free, else any free port (a second dev must not die on the first one's ports)."""
        s = self.settings
        wanted = {"scheduler": s.scheduler_metrics_port} if self.scheduler else {}
        for i in range(self.workers):
            # Each worker process needs its own metrics port; 0 keeps them all off.
            name = "worker" if self.workers == 1 else f"worker-{i + 1}"
            wanted[name] = s.worker_metrics_port + i if s.worker_metrics_port else 0
        ports: dict[str, int] = {}
        for name, port in wanted.items():
            if port and (port in ports.values() or not port_free(s.metrics_host, port)):
                try:
                    free = any_free_port(s.metrics_host, exclude=set(ports.values()))
                except OSError as exc:
                    raise CommandError(
                        f"cannot serve metrics on {s.metrics_host}: {exc.strerror or exc}; "
                        "check ORDINAUT_METRICS_HOST"
                    ) from None
                log.warning(
                    "metrics port %s on %s is in use (another ordinaut dev?); "
                    "%s metrics are on port %s instead",
                    port,
                    s.metrics_host,
                    name,
                    free,
                )
                port = free
            ports[name] = port
        return ports

    def start_children(self) -> None:
        s = self.settings
        cli = [sys.executable, "-m", "ordinaut.cli"]
        self.since = asyncio.run(database_now(s))
        self.children.append(
            Child("api", [*cli, "api", "--host", s.api_host, "--port", str(s.api_port)], True)
        )
        for name, port in self.metrics_ports.items():
            command = "scheduler" if name == "scheduler" else "worker"
            argv = [*cli, command, "--metrics-port", str(port)]
            self.children.append(Child(name, argv, metrics_port=port))

        env = self.child_env()
        width = max(len(c.name) for c in self.children)
        for child in self.children:
            child.proc = subprocess.Popen(
                child.argv,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                errors="replace",
                # Own process group: a terminal Ctrl-C reaches only this supervisor, which then
                # stops the children in order instead of everything dying at once.
                process_group=0,
                preexec_fn=die_with_parent(),
            )
        # Reader threads start only after every fork: preexec_fn is not safe beside threads.
        for child in self.children:
            assert child.proc is not None
            assert child.proc.stdout is not None
            thread = threading.Thread(
                target=relay, args=(child.proc.stdout, f"{child.name:<{width}} | "), daemon=True
            )
            thread.start()
            child.threads.append(thread)

    def child_env(self) -> dict[str, str]:
        """The environment of the API, scheduler and workers: this one plus dev's servers."""
        s = self.settings
        env = {
            **os.environ,
            "ORDINAUT_DATABASE_URL": s.database_url,
            "ORDINAUT_REDIS_URL": s.redis_url,
            "ORDINAUT_HOME": str(self.home),
            "ORDINAUT_API_PORT": str(s.api_port),
            "ORDINAUT_LOG_JSON": "true" if s.log_json else "false",
            "ORDINAUT_SECRETS_KEY": s.secrets_key or dev_secrets_key(self.home),
            "PYTHONUNBUFFERED": "1",
        }
        if self.allow_loopback_egress:
            env["ORDINAUT_EGRESS_ALLOWLIST"] = ",".join((*s.egress_allowlist, *LOOPBACK_NETWORKS))
        return env

    def wait_until_ready(self) -> bool:
        """True once every child is up: the API answers /health/live, the scheduler has ticked
        and each worker has sent a heartbeat. False (the start failed) if any child died
        first, or did not report in time, or a signal came first."""
        api = self.children[0]
        deadline = time.monotonic() + READY_TIMEOUT_S
        waiting = [c.name for c in self.children]
        while not self.signals.stop.is_set():
            dead = [c for c in self.children if c.exit_code() is not None]
            for child in dead:
                child.reported = True
                log.error(
                    "%s exited with code %s during start-up (its output is above); "
                    "stopping everything",
                    child.name,
                    child.exit_code(),
                )
            if dead:
                return False
            if api.name in waiting and health_live(self.base):
                waiting.remove(api.name)
            if api.name not in waiting:
                try:
                    reported = asyncio.run(
                        children_reported(self.settings, self.since, self.children)
                    )
                except (OSError, TimeoutError) as exc:  # the database busy: ask again
                    log.debug("could not read the children's reports: %s", exc)
                    reported = set()
                waiting = [name for name in waiting if name not in reported]
            if not waiting:
                return True
            if time.monotonic() > deadline:
                log.error(
                    "%s did not report in within %.0f s; stopping everything",
                    ", ".join(waiting),
                    READY_TIMEOUT_S,
                )
                return False
            self.signals.stop.wait(POLL_S)
        return False

    def supervise(self) -> int:
        """Watch the children until a signal; a dead API ends dev, others are only reported."""
        while not self.signals.stop.wait(POLL_S * 2):
            for child in self.children:
                code = child.exit_code()
                if code is None or child.reported:
                    continue
                child.reported = True
                if child.essential:
                    log.error("%s exited with code %s; stopping everything", child.name, code)
                    return EXIT_FAILURE
                log.error(
                    "%s (pid %s) exited with code %s; it is not restarted: "
                    "restart `ordinaut dev` to bring it back",
                    child.name,
                    child.pid,
                    code,
                )
        return EXIT_OK

    def stop_children(self) -> None:
        live = [c for c in self.children if c.exit_code() is None]
        if live:
            log.info("stopping %s", ", ".join(c.name for c in live))
        for child in live:
            signal_child(child, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT_S
        while any(c.exit_code() is None for c in live):
            if self.signals.force.is_set() or time.monotonic() > deadline:
                for child in live:
                    if child.exit_code() is None:
                        log.warning("%s did not stop in time; killing it", child.name)
                        signal_child(child, signal.SIGKILL)
                break
            time.sleep(0.05)
        for child in self.children:
            if child.proc is not None:
                code = child.proc.wait()
                if code != 0 and child in live and not self.signals.force.is_set():
                    log.warning("%s exited with code %s while stopping", child.name, code)
            for thread in child.threads:
                thread.join(timeout=2)


# --- database preparation -------------------------------------------------------------------


async def database_now(settings: Settings) -> Any:
    """The database's clock (the one every process follows)."""
    from ordinaut.store import db

    conn = await db.connect(settings)
    try:
        return await conn.fetchval("SELECT now()")
    finally:
        await conn.close()


async def children_reported(settings: Settings, since: Any, children: list[Child]) -> set[str]:
    """Names of the scheduler and workers that have reported in since ``since``: the scheduler
    by a tick, a worker by a heartbeat under its process id."""
    from ordinaut.store import db

    conn = await db.connect(settings)
    try:
        ticked = await conn.fetchval(
            "SELECT max(last_tick_at) >= $1 FROM scheduler_state", since - SKEW
        )
        beating = {
            row["pid"]
            for row in await conn.fetch(
                "SELECT pid FROM worker_heartbeats WHERE hostname = $1 AND last_seen >= $2",
                socket.gethostname(),
                since - SKEW,
            )
        }
    finally:
        await conn.close()
    return {
        child.name
        for child in children
        if (child.name == "scheduler" and ticked)
        or (child.name.startswith("worker") and child.pid in beating)
    }


async def prepare_database(settings: Settings, home: Path, url: str) -> tuple[dict[str, str], bool]:
    """Migrate, make sure the dev admin exists, issue it a fresh token, save credentials.json.
    Returns the credentials and whether the admin was created just now."""
    from ordinaut.auth import ADMIN, SCOPES, InvalidCredentials
    from ordinaut.clock import DatabaseClock
    from ordinaut.store import agents, db

    path = home / "credentials.json"
    saved = read_credentials(path)
    conn = await db.connect(settings)
    try:
        applied = await db.migrate(conn, settings.migrations_dir)
        if applied:
            log.info("applied migrations: %s", ", ".join(applied))
        clock = DatabaseClock()  # one clock: the database's (docs/guarantees.md, "One clock")
        await db.sync_clock(conn, clock)
        tokens = None
        created = False
        if saved and saved.get("agent_id") and saved.get("agent_secret"):
            agent_id, secret = saved["agent_id"], saved["agent_secret"]
            # The same exchange a client makes: it fails if the agent was deleted, deactivated
            # or had its secret rotated (or the database was reset), and then a new admin is due.
            try:
                tokens = await agents.exchange_secret(conn, agent_id, secret, clock.now(), settings)
            except InvalidCredentials:
                tokens = None
            if tokens is not None and ADMIN not in tokens.scope.split():
                tokens = None
        if tokens is None:
            agent, secret = await agents.create_agent(
                conn, name=ADMIN_NAME, scopes=list(SCOPES), now=clock.now()
            )
            agent_id = str(agent.id)
            created = True
            log.info("created admin agent %s", agent_id)
            tokens = await agents.issue_tokens(conn, agent.id, clock.now(), settings)
    finally:
        await conn.close()
    creds = {"url": url, "agent_id": agent_id, "agent_secret": secret, "token": tokens.access_token}
    write_credentials(path, creds)
    return creds, created


def read_credentials(path: Path) -> dict[str, str] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def write_credentials(path: Path, creds: dict[str, str]) -> None:
    """Replace ``path`` atomically with a file only its owner can read (it holds a secret)."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(creds, f, indent=2)
        f.write("\n")
    os.chmod(tmp, 0o600)  # O_CREAT's mode does not apply to a leftover tmp file
    os.replace(tmp, path)


# --- process plumbing -----------------------------------------------------------------------


def die_with_parent() -> Callable[[], None] | None:
    """On Linux, a child gets SIGTERM if dev itself is killed outright (no orphans on a port)."""
    if not sys.platform.startswith("linux"):
        return None
    import ctypes  # here: the parser imports this module for every command

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        prctl = libc.prctl
    except (OSError, AttributeError):
        return None
    pr_set_pdeathsig = 1

    def set_death_signal() -> None:
        prctl(pr_set_pdeathsig, int(signal.SIGTERM), 0, 0, 0)

    return set_death_signal


def signal_child(child: Child, sig: signal.Signals) -> None:
    if child.proc is None:
        return
    with contextlib.suppress(ProcessLookupError):
        child.proc.send_signal(sig)


def relay(stream: IO[str], prefix: str) -> None:
    """Copy a child's output to our stderr, each line prefixed with the child's name."""
    for line in stream:
        sys.stderr.write(prefix + line)
        sys.stderr.flush()
    stream.close()


def port_free(host: str, port: int) -> bool:
    """True if ``host:port`` can be bound now (checked before starting anything)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        # The same option uvicorn sets, so a port in TIME_WAIT does not count as taken.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def any_free_port(host: str, exclude: set[int]) -> int:
    """A port the system gives out on ``host`` now (raises OSError if ``host`` has none)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    for _ in range(20):
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.bind((host, 0))
            port = int(sock.getsockname()[1])
        if port not in exclude:
            return port
    raise OSError(f"no free port on {host}")


def health_live(base: str) -> bool:
    import urllib.error  # here: the parser imports this module for every command
    import urllib.request

    try:
        with urllib.request.urlopen(f"{base}/health/live", timeout=1.0) as resp:
            return bool(resp.status == 200)
    except (urllib.error.URLError, OSError, ValueError):
        return False


def forget_dead_pg_handles(pgdata: Path) -> None:
    """Drop pids of dead processes from pgserver's handle list.

    pgserver stops PostgreSQL only when the last process holding a handle lets go; a dev that
    was killed outright leaves its pid listed forever, and every later clean exit would then
    leave PostgreSQL running.
    """
    path = pgdata / ".handle_pids.json"
    try:
        pids = json.loads(path.read_text())
    except (OSError, ValueError):
        return
    if not isinstance(pids, list):
        return
    alive = [pid for pid in pids if isinstance(pid, int) and pid_alive(pid)]
    if alive != pids:
        path.write_text(json.dumps(alive))


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def stop_leftover_redis(conf: Path) -> None:
    """Stop a redis-server still running on this data directory from a dev that was killed.

    Two servers appending to one AOF would corrupt it, and the new one would steal the socket.
    """
    try:
        import psutil  # a dependency of pgserver
    except ImportError:
        return
    for proc in psutil.process_iter(["cmdline"]):
        cmdline = proc.info.get("cmdline") or []
        if str(conf) in cmdline:
            log.warning("stopping a leftover redis-server", extra={"pid": proc.pid})
            try:
                proc.terminate()
                proc.wait(timeout=10)
            except psutil.TimeoutExpired:
                proc.kill()
            except psutil.Error:
                pass


# --- what the person sees -------------------------------------------------------------------


def show_secret(created: bool) -> bool:
    """The admin secret is shown once, when it was just made, and only to a person at a
    terminal: redirected output ends up in log files, which must never hold a credential."""
    return created and sys.stdout.isatty()


def banner(stack: DevStack, creds: dict[str, str], *, show_secret: bool = False) -> str:
    """What ``ordinaut dev`` prints when it is ready. No token ever (it is in the credential
    file); the secret only when ``show_secret``."""
    url = creds["url"]
    path = stack.home / "credentials.json"
    secret = (
        f"  Agent secret  {creds['agent_secret']}  (shown once; also saved below)\n"
        if show_secret
        else ""
    )
    script = "import json,sys; print(json.load(open(sys.argv[1]))['token'])"
    read_token = shlex.join([sys.executable, "-c", script, str(path)])
    pg = "embedded" if stack.pg is not None else "ORDINAUT_DATABASE_URL"
    redis = "embedded" if stack.redis is not None else "ORDINAUT_REDIS_URL"
    procs = ", ".join(f"{c.name} ({c.pid})" for c in stack.children)
    metrics = ", ".join(f"{c.name} :{c.metrics_port}" for c in stack.children if c.metrics_port)
    egress = ""
    if stack.allow_loopback_egress:
        egress = "\n  Egress        http.request may reach loopback (--allow-loopback-egress)"
    ttl_min = stack.settings.access_token_ttl_s // 60
    return f"""
Ordinaut is running.

  API           {url}
  Docs          {url}/docs
  Admin agent   {creds["agent_id"]}
{secret}  Credentials   {path}  (agent secret and a token; only you can read it)
  Data          {stack.home}  (PostgreSQL: {pg}, Redis: {redis})
  Processes     {procs}
  Metrics       {metrics or "off"}{egress}

A token for the admin agent is in that file (valid {ttl_min} min; rerun dev or
POST /agents/auth/token for more):

  export TOKEN=$({read_token})
  curl -s -H "Authorization: Bearer $TOKEN" {url}/tasks

Press Ctrl-C to stop.
"""


def dev_secrets_key(home: Path) -> str:
    """The key that encrypts agents' secrets in dev mode, made once and kept under home."""
    from ordinaut.secrets import new_key

    path = home / "secrets.key"
    if path.exists():
        return path.read_text().strip()
    key = new_key()
    path.write_text(key + "\n")
    path.chmod(0o600)
    return key
