"""What every example needs: where Ordinaut is, a token for it, and a few REST calls.

The examples speak plain HTTP to the public API (with httpx, which Ordinaut already depends
on), so each one doubles as a readable transcript of the requests an assistant would make.

Where Ordinaut is and who we are, first match wins:

1. ``--url`` / ``--token``;
2. ``ORDINAUT_URL`` / ``ORDINAUT_TOKEN``;
3. the credential ``make dev`` saves: ``--credentials FILE``, else
   ``$ORDINAUT_HOME/credentials.json``, else ``.ordinaut/credentials.json`` here or at the
   repository root. Its agent id and secret are exchanged for a fresh token
   (``POST /agents/auth/token``); the saved token is only the fallback, it expires in an hour.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml

REPO = Path(__file__).resolve().parents[1]
TERMINAL = frozenset({"succeeded", "failed", "dead_letter", "canceled", "skipped"})

# Exit codes the examples share (a test or a script can rely on them).
EXIT_OK = 0
EXIT_RUN_FAILED = 1
EXIT_SETUP = 2
EXIT_UNAVAILABLE = 3


class ApiError(Exception):
    """An error answer, carrying the API's error envelope."""

    def __init__(self, status: int, code: str, message: str, details: Any, request_id: str):
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.details = details
        self.request_id = request_id

    def explain(self) -> str:
        """The message, each problem the API listed, and the request id to quote."""
        lines = [f"Ordinaut answered {self.status} {self.code}: {self.message}"]
        if isinstance(self.details, list):
            for problem in self.details:
                if isinstance(problem, dict) and "message" in problem:
                    lines.append(f"  - {problem.get('field', '?')}: {problem['message']}")
        if self.request_id:
            lines.append(f"  (request id {self.request_id})")
        return "\n".join(lines)


@dataclass
class Api:
    """A small synchronous client over Ordinaut's REST API."""

    url: str
    http: httpx.Client

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        """One request; the JSON answer, or ApiError built from the error envelope."""
        response = self.http.request(method, path, **kwargs)
        if response.is_success:
            return response.json() if response.content else None
        try:
            error = response.json().get("error") or {}
            rid = response.json().get("request_id", "")
        except ValueError:
            error, rid = {}, response.headers.get("x-request-id", "")
        raise ApiError(
            response.status_code,
            str(error.get("code", f"http_{response.status_code}")),
            str(error.get("message", response.reason_phrase)),
            error.get("details"),
            str(rid),
        )

    def create_task(self, body: dict[str, Any]) -> dict[str, Any]:
        task: dict[str, Any] = self.call("POST", "/tasks", json=body)
        return task

    def delete_task(self, task_id: str) -> None:
        self.call("DELETE", f"/tasks/{task_id}")

    def fire_times(self, task_id: str, limit: int = 3) -> list[str]:
        doc = self.call("GET", f"/tasks/{task_id}/preview", params={"limit": limit})
        return list(doc["fire_times"])

    def run_now(self, task_id: str) -> str:
        return str(self.call("POST", f"/tasks/{task_id}/run_now")["run_id"])

    def wait_for_run(self, run_id: str, timeout_s: float) -> dict[str, Any]:
        """Poll ``GET /runs/{id}`` until the run ends (retries included) or time runs out."""
        deadline = time.monotonic() + timeout_s
        while True:
            run: dict[str, Any] = self.call("GET", f"/runs/{run_id}")
            if run["status"] in TERMINAL or time.monotonic() > deadline:
                return run
            time.sleep(0.3)

    def wait_for_runs(
        self, task_id: str, count: int, timeout_s: float, **filters: Any
    ) -> list[dict[str, Any]]:
        """The task's first ``count`` finished runs (oldest first), with their step results."""
        deadline = time.monotonic() + timeout_s
        while True:
            page = self.call("GET", "/runs", params={"task_id": task_id, "limit": 100, **filters})
            done = [r for r in page["items"] if r["status"] in TERMINAL]
            if len(done) >= count or time.monotonic() > deadline:
                done.sort(key=lambda r: (r["scheduled_for"], r["created_at"]))
                return [self.call("GET", f"/runs/{r['id']}") for r in done[:count]]
            time.sleep(0.3)


def add_connection_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", help="Ordinaut's address (default: from the credentials)")
    parser.add_argument("--token", help="an access token (default: from the credentials)")
    parser.add_argument(
        "--credentials",
        type=Path,
        help="the JSON file `make dev` saves (default: .ordinaut/credentials.json)",
    )
    parser.add_argument(
        "--timeout", type=float, default=30.0, help="seconds to wait for runs (default: 30)"
    )
    parser.add_argument(
        "--keep",
        action="store_true",
        help="leave the task in place (and the stub services up) until Ctrl-C",
    )


def _credentials_file(explicit: Path | None) -> Path | None:
    if explicit is not None:
        return explicit
    candidates = []
    if os.environ.get("ORDINAUT_HOME"):
        candidates.append(Path(os.environ["ORDINAUT_HOME"]) / "credentials.json")
    candidates += [Path(".ordinaut/credentials.json"), REPO / ".ordinaut/credentials.json"]
    return next((p for p in candidates if p.is_file()), None)


def _token_from(url: str, creds: dict[str, Any]) -> str:
    if creds.get("agent_id") and creds.get("agent_secret"):
        response = httpx.post(
            f"{url}/agents/auth/token",
            json={"agent_id": creds["agent_id"], "agent_secret": creds["agent_secret"]},
            timeout=10,
        )
        if response.is_success:
            return str(response.json()["access_token"])
    token = creds.get("token")
    if not token:
        raise SystemExit("the credentials file has neither a working secret nor a token")
    return str(token)


@contextmanager
def connect(args: argparse.Namespace) -> Iterator[Api]:
    """An ``Api`` for the parsed arguments (see the module docstring for the lookup order)."""
    url = args.url or os.environ.get("ORDINAUT_URL")
    token = args.token or os.environ.get("ORDINAUT_TOKEN")
    if not (url and token):
        path = _credentials_file(args.credentials)
        if path is None:
            raise SystemExit(
                "No Ordinaut credentials found. Start Ordinaut with `make dev` (it saves "
                ".ordinaut/credentials.json), or pass --url and --token."
            )
        creds = json.loads(path.read_text())
        url = url or str(creds.get("url", "http://127.0.0.1:8080"))
        try:
            token = token or _token_from(url.rstrip("/"), creds)
        except httpx.TransportError as exc:
            raise SystemExit(
                f"cannot reach Ordinaut at {url} ({exc}); is `make dev` running?"
            ) from None
    url = url.rstrip("/")
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=url, headers=headers, timeout=15) as http:
        try:
            http.get("/health/live").raise_for_status()
        except httpx.HTTPError as exc:
            raise SystemExit(
                f"cannot reach Ordinaut at {url} ({exc}); is `make dev` running?"
            ) from None
        yield Api(url=url, http=http)


def load_task(path: Path, **params: Any) -> dict[str, Any]:
    """A task body (the YAML of ``POST /tasks``) with some of its ``payload.params`` replaced."""
    body: dict[str, Any] = yaml.safe_load(path.read_text())
    body.setdefault("payload", {}).setdefault("params", {}).update(params)
    return body


def show_run(run: dict[str, Any]) -> None:
    """Print a run and each step's result, as the status page shows them."""
    took = f"{run['duration_ms']} ms" if run.get("duration_ms") is not None else "-"
    print(f"run {run['id']}: {run['status']} (attempt {run['attempt']}, {took})")
    for step in run.get("step_results") or []:
        print(f"  step {step.get('id')} [{step.get('uses')}]: {step.get('status')}")
        if step.get("error"):
            print(f"    error: {step['error'].get('code')}: {step['error'].get('message')}")
    if run.get("error"):
        print(f"  error: {json.dumps(run['error'])}")


def hint_egress(run: dict[str, Any], port: int) -> None:
    """Explain the one setting the stub services need when the worker refused loopback."""
    codes = {(s.get("error") or {}).get("code") for s in run.get("step_results") or []}
    if "egress_refused" in codes:
        print(
            f"\nThe worker refused to call 127.0.0.1:{port}: http.request never reaches "
            "loopback unless an operator allows it. Restart Ordinaut with\n\n"
            "    make dev ARGS=--allow-loopback-egress\n\n"
            f"(or open only this port: ORDINAUT_EGRESS_ALLOWLIST=127.0.0.1:{port} make dev)\n"
            "and run this again.",
            file=sys.stderr,
        )


def wait_for_ctrl_c(message: str) -> None:
    print(message)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        print()
