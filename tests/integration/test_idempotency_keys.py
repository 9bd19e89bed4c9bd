"""Idempotency keys through the worker: each step of a run sends its own key, and a retry
of the run (attempt 2) sends the same keys as attempt 1. The receiver is on 127.0.0.1."""

from __future__ import annotations

import json
import random
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import asyncpg
import pytest
from support import queue_runs

from ordinaut.clock import FrozenClock
from ordinaut.config import Settings
from ordinaut.worker import Worker


class Receiver(ThreadingHTTPServer):
    """Honours Idempotency-Key: a key it has seen gets the first answer and no new effect.
    ``/flaky`` answers 503 to its first request, so the run fails and is retried."""

    daemon_threads = True
    block_on_close = False

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.lock = threading.Lock()
        self.requests: list[tuple[str, str, str]] = []  # (path, key, item)
        self.effects: list[str] = []
        self.answers: dict[str, bytes] = {}
        self.flaky_calls = 0


class Handler(BaseHTTPRequestHandler):
    server: Receiver

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))))
        key = self.headers.get("Idempotency-Key", "")
        status = 200
        with self.server.lock:
            self.server.requests.append((self.path, key, body["item"]))
            if self.path == "/flaky":
                self.server.flaky_calls += 1
                status = 503 if self.server.flaky_calls == 1 else 200
            if status == 200 and key not in self.server.answers:
                self.server.effects.append(body["item"])
                self.server.answers[key] = json.dumps({"order": len(self.server.effects)}).encode()
            answer = self.server.answers.get(key, b"{}") if status == 200 else b"{}"
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _post(step_id: str, path: str, item: str) -> dict[str, Any]:
    return {
        "id": step_id,
        "uses": "http.request",
        "with": {"method": "POST", "url": "${params.base}" + path, "json": {"item": item}},
    }


async def test_a_retried_run_sends_each_steps_own_key_again(
    pool: asyncpg.Pool,
    clock: FrozenClock,
    settings: Settings,
    make_task: Any,
    receiver: Receiver,
) -> None:
    port = receiver.server_address[1]
    payload = {
        "params": {"base": f"http://127.0.0.1:{port}"},
        "pipeline": [
            _post("first", "/orders", "tea"),
            _post("second", "/orders", "milk"),
            _post("last", "/flaky", "bread"),
        ],
    }
    task = await make_task(payload=payload, max_retries=2, backoff_strategy="fixed")
    (run_id,) = await queue_runs(pool, task, at=clock.now(), n=1, trigger="run_now")
    slot_key = await pool.fetchval("SELECT idempotency_key FROM runs WHERE id = $1", run_id)
    assert slot_key
    worker_settings = settings.replace(egress_allowlist=(f"127.0.0.1:{port}",), backoff_base_s=30)
    worker = Worker(pool, worker_settings, clock, worker_id="w1", rng=random.Random(1))

    assert await worker.run_once() == 1  # attempt 1: /flaky answers 503, the run is retried
    assert await pool.fetchval("SELECT attempt FROM due_work WHERE run_id = $1", run_id) == 2
    clock.advance(30)
    assert await worker.run_once() == 1  # attempt 2
    run = await pool.fetchrow("SELECT status, attempt FROM runs WHERE id = $1", run_id)
    assert (run["status"], run["attempt"]) == ("succeeded", 2)

    once = [
        ("/orders", f"{slot_key}:first", "tea"),
        ("/orders", f"{slot_key}:second", "milk"),
        ("/flaky", f"{slot_key}:last", "bread"),
    ]
    assert receiver.requests == once * 2  # distinct per step, the same on attempt 2
    # the receiver placed each order once: the second step was not taken for a repeat of
    # the first, and attempt 2's repeats of them were dropped
    assert receiver.effects == ["tea", "milk", "bread"]
