"""Where the CLI and the MCP server find a server URL and a credential.

In order, for the URL: ``--url``, ``$ORDINAUT_URL``, the last ``ordinaut login``, the URL that
``ordinaut dev`` saved, ``http://127.0.0.1:8080``. For the credential: ``--token``,
``$ORDINAUT_TOKEN``, the login saved for that URL, then ``ordinaut dev``'s admin credential
when it is for that URL.

``ordinaut login`` keeps one entry per server URL in ``credentials.json`` under
``$ORDINAUT_HOME`` when that is set, else ``$XDG_CONFIG_HOME/ordinaut`` (``~/.config/ordinaut``).
``ordinaut dev`` writes ``{url, agent_id, agent_secret, token}`` to ``.ordinaut/credentials.json``
(``$ORDINAUT_HOME``); the two can share one file: logins live under its ``"servers"`` key and
the dev keys are left alone.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ordinaut.client.models import Tokens
from ordinaut.client.session import DEFAULT_URL, normalize_url

ENV_URL = "ORDINAUT_URL"
ENV_TOKEN = "ORDINAUT_TOKEN"
# The same variable as Settings.home: where `ordinaut dev` keeps its data and credential.
ENV_HOME = "ORDINAUT_HOME"
FILE_NAME = "credentials.json"


@dataclass
class Connection:
    """A server URL and what to authenticate with; ``source`` says where they came from."""

    url: str
    token: str | None = None
    agent_id: str | None = None
    agent_secret: str | None = None
    source: str = "none"

    def client_kwargs(self) -> dict[str, Any]:
        return {
            "token": self.token,
            "agent_id": self.agent_id,
            "agent_secret": self.agent_secret,
        }


def login_path(environ: Mapping[str, str]) -> Path:
    """The file ``ordinaut login`` writes."""
    if environ.get(ENV_HOME):
        return Path(environ[ENV_HOME]) / FILE_NAME
    config = environ.get("XDG_CONFIG_HOME") or str(Path(environ.get("HOME", "~")) / ".config")
    return Path(config).expanduser() / "ordinaut" / FILE_NAME


def dev_path(environ: Mapping[str, str]) -> Path:
    """The file ``ordinaut dev`` writes (relative to the working directory by default)."""
    return Path(environ.get(ENV_HOME) or ".ordinaut") / FILE_NAME


def _read(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write(path: Path, data: dict[str, Any]) -> None:
    """Replace ``path`` atomically with a file only its owner can read (it holds secrets)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(data, f, indent=2)
        f.write("\n")
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def _servers(data: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    servers = data.get("servers")
    if not isinstance(servers, dict):
        return {}
    return {k: v for k, v in servers.items() if isinstance(v, dict)}


def save_login(
    environ: Mapping[str, str],
    url: str,
    *,
    token: str,
    agent_id: str | None = None,
    agent_secret: str | None = None,
) -> Path:
    """Remember a credential for ``url`` and make it the default server."""
    path = login_path(environ)
    data = _read(path)
    entry = {"token": token}
    if agent_id and agent_secret:
        entry.update(agent_id=agent_id, agent_secret=agent_secret)
    servers = _servers(data)
    servers[normalize_url(url)] = entry
    data["servers"] = servers
    data["default_url"] = normalize_url(url)
    _write(path, data)
    return path


def remember_token(environ: Mapping[str, str], url: str, tokens: Tokens) -> None:
    """Keep a renewed access token for the saved login of ``url`` (no-op without one)."""
    path = login_path(environ)
    data = _read(path)
    servers = _servers(data)
    entry = servers.get(normalize_url(url))
    if entry is None:
        return
    entry["token"] = tokens.access_token
    data["servers"] = servers
    _write(path, data)


def resolve(
    environ: Mapping[str, str], *, url: str | None = None, token: str | None = None
) -> Connection:
    """The server and credential to use (see the module docstring for the order)."""
    saved = _read(login_path(environ))
    dev = _read(dev_path(environ))
    dev_url = normalize_url(dev["url"]) if isinstance(dev.get("url"), str) else None
    chosen = url or environ.get(ENV_URL) or saved.get("default_url") or dev_url or DEFAULT_URL
    chosen = normalize_url(str(chosen))
    if token:
        return Connection(chosen, token=token, source="--token")
    if environ.get(ENV_TOKEN):
        return Connection(chosen, token=environ[ENV_TOKEN], source=ENV_TOKEN)
    entry = _servers(saved).get(chosen)
    if entry is not None:
        return Connection(
            chosen,
            token=entry.get("token"),
            agent_id=entry.get("agent_id"),
            agent_secret=entry.get("agent_secret"),
            source=str(login_path(environ)),
        )
    if dev_url == chosen:
        return Connection(
            chosen,
            token=dev.get("token"),
            agent_id=dev.get("agent_id"),
            agent_secret=dev.get("agent_secret"),
            source=str(dev_path(environ)),
        )
    return Connection(chosen)
