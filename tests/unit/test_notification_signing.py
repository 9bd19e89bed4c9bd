"""The pure parts of notifications: the signature receivers check, backoff, target rules."""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime, timedelta

import pytest

from ordinaut import notifications
from ordinaut.pipeline.tools import Allowlist

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
NONE = Allowlist()


def test_signature_is_hmac_sha256_over_timestamp_dot_body() -> None:
    text = notifications.encode({"b": 1, "a": "é"})
    assert text == '{"a":"é","b":1}'  # compact, keys sorted: the exact bytes sent
    header = notifications.signature("s3cret", 1_772_452_800, text)
    digest = hmac.new(b"s3cret", f"1772452800.{text}".encode(), hashlib.sha256).hexdigest()
    assert header == f"t=1772452800,v1={digest}"


def test_verify_accepts_only_the_right_secret_body_and_a_recent_timestamp() -> None:
    text = notifications.encode({"id": "x"})
    t = int(NOW.timestamp())
    header = notifications.signature("k", t, text)
    assert notifications.verify("k", header, text, now=NOW)
    assert notifications.verify("k", header, text, now=NOW + timedelta(seconds=300))
    assert not notifications.verify("k", header, text, now=NOW + timedelta(seconds=301))
    assert not notifications.verify("other", header, text, now=NOW)
    assert not notifications.verify("k", header, text + " ", now=NOW)
    assert not notifications.verify("k", f"t={t + 1},{header.split(',')[1]}", text, now=NOW)
    assert not notifications.verify("k", "garbage", text, now=NOW)
    # a second v1 (a rotated secret) is accepted when one matches
    rotated = f"{header},v1={'0' * 64}"
    assert notifications.verify("k", rotated, text, now=NOW)


def test_backoff_doubles_up_to_its_cap() -> None:
    waits = [notifications.backoff_s(n, base_s=10, max_s=60) for n in range(1, 7)]
    assert waits == [10, 20, 40, 60, 60, 60]


@pytest.mark.parametrize(
    ("url", "allow", "ok"),
    [
        ("https://hooks.example.com/x", NONE, True),
        ("http://hooks.example.com/x", NONE, False),
        ("http://127.0.0.1:8000/x", Allowlist.parse(["127.0.0.0/8"]), True),
        ("http://127.0.0.1:8000/x", Allowlist.parse(["127.0.0.1:9000"]), False),
        ("https://127.0.0.1/x", NONE, False),
        ("https://169.254.169.254/latest", NONE, False),
        ("https://user:pw@hooks.example.com/", NONE, False),
        ("https:///nohost", NONE, False),
        ("mailto:x@example.com", NONE, False),
        ("https://" + "a" * 2050 + ".com/", NONE, False),
    ],
)
def test_url_rules(url: str, allow: Allowlist, ok: bool) -> None:
    assert (notifications.url_problem(url, allow) is None) is ok


def test_targets_for_picks_the_targets_that_want_an_outcome() -> None:
    notify = [
        {"url": "https://a.example/", "on": ["failed"], "secret": "A"},
        {"url": "https://b.example/", "on": ["succeeded", "dead_letter"], "secret": "B"},
    ]
    assert [t["secret"] for t in notifications.targets_for(notify, "dead_letter")] == ["B"]
    assert notifications.targets_for(None, "failed") == []
