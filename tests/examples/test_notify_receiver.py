"""The example notification receiver (examples/notify/receiver.py) accepts exactly what
Ordinaut signs: a wrong secret, a changed body, a stale timestamp or no signature is a 401,
and a repeated delivery id is acknowledged without being handled twice."""

from __future__ import annotations

import importlib.util
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest

from ordinaut import notifications

REPO = Path(__file__).resolve().parents[2]
SECRET = "receiver-test-secret"


def _module() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "notify_receiver", REPO / "examples" / "notify" / "receiver.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def server() -> Iterator[Any]:
    receiver = _module().Receiver(("127.0.0.1", 0), SECRET, quiet=True)
    thread = threading.Thread(target=receiver.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        receiver.shutdown()
        receiver.server_close()


def _body(delivery: str) -> str:
    return notifications.encode(
        notifications.body(
            delivery_id=delivery,
            outcome="dead_letter",
            task_id="t1",
            task_title="export",
            run_id="r1",
            status="dead_letter",
            attempt=2,
            error={"code": "boom"},
            finished_at="2026-03-02T12:00:00Z",
            run_url="https://ordinaut.example/runs/r1",
        )
    )


def _post(server: Any, text: str, signature: str | None, delivery: str = "d1") -> int:
    headers = {"Content-Type": "application/json", "Ordinaut-Delivery": delivery}
    if signature is not None:
        headers["Ordinaut-Signature"] = signature
    url = f"http://127.0.0.1:{server.server_address[1]}/ordinaut"
    return httpx.post(url, content=text.encode(), headers=headers).status_code


def test_the_receiver_accepts_ordinauts_signature_and_refuses_anything_else(server: Any) -> None:
    text = _body("d1")
    now = int(time.time())
    good = notifications.signature(SECRET, now, text)
    assert _post(server, text, notifications.signature("other-secret", now, text)) == 401
    assert _post(server, text.replace("boom", "fine"), good) == 401
    assert _post(server, text, notifications.signature(SECRET, now - 301, text)) == 401
    assert _post(server, text, None) == 401
    assert _post(server, text, f"t={now},v1={'0' * 64}") == 401
    assert server.deliveries == {}
    assert server.rejected == 5

    assert _post(server, text, good) == 200
    assert _post(server, text, notifications.signature(SECRET, now + 1, text)) == 200  # retry
    assert list(server.deliveries) == ["d1"]  # handled once
    assert server.deliveries["d1"] == json.loads(text)


def test_verify_matches_ordinauts_own_check() -> None:
    verify = _module().verify
    text = _body("d2")
    now = time.time()
    header = notifications.signature(SECRET, int(now), text)
    assert verify(SECRET, header, text.encode(), now=now)
    assert not verify(SECRET + "x", header, text.encode(), now=now)
    assert not verify(SECRET, header, text.encode() + b" ", now=now)
