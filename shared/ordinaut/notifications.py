"""Run notifications, pure: a task's ``payload.notify`` targets, the body, the signature, backoff.

A task may carry up to ``MAX_TARGETS`` webhooks ``{"url", "on", "secret"}``. When one of its
runs ends in a state listed in ``on``, Ordinaut POSTs ``body(...)`` to ``url``, signed with
HMAC-SHA256 under the owner's stored secret ``secret`` (``Ordinaut-Signature:
t=<unix seconds>,v1=<hex>`` over ``"<t>.<body>"``). The outcomes:

- ``succeeded``: the run succeeded;
- ``failed``: an attempt failed and the run is queued again (one per failed attempt);
- ``dead_letter``: the run ended without success and will not be retried.

Storage and routing live in ``store/notifications.py`` and ``notifier.py``; nothing here
does I/O.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from ordinaut.lazy import lazy_module
from ordinaut.pipeline.tools.egress import Allowlist, refusal_reason
from ordinaut.secrets import NAME_RE
from ordinaut.vocabulary import NOTIFY_OUTCOMES

if TYPE_CHECKING:
    import httpx
else:  # only a task with notify targets parses a URL; the API's cold start skips httpx
    httpx = lazy_module("httpx")

MAX_TARGETS = 5
MAX_URL_LENGTH = 2048
OUTCOMES = NOTIFY_OUTCOMES
FIELDS = ("url", "on", "secret")
SIGNATURE_HEADER = "Ordinaut-Signature"
DELIVERY_HEADER = "Ordinaut-Delivery"
EVENT_HEADER = "Ordinaut-Event"
# outbox event type of a run's end -> the outcome it is
OUTCOME_OF_EVENT = {
    "run.succeeded": "succeeded",
    "run.failed": "failed",  # runs recorded as failed by older versions
    "run.retried": "failed",
    "run.dead_lettered": "dead_letter",
}
LIFECYCLE_PREFIX = "run."  # topics of the owner's lifecycle events: run.<outcome>


def topic(outcome: str) -> str:
    """The lifecycle event topic an event task subscribes to for ``outcome``."""
    return f"{LIFECYCLE_PREFIX}{outcome}"


def _problem(field: str, message: str) -> dict[str, Any]:
    return {"field": field, "message": message, "step": None}


def url_problem(url: Any, allowlist: Allowlist) -> str | None:
    """Why ``url`` cannot be a notify target, else None.

    https only; http only to a host an operator opened in ORDINAUT_EGRESS_ALLOWLIST (as
    ``ordinaut dev --allow-loopback-egress`` does for loopback). A literal internal address
    that is not allowlisted is refused now; a name is checked after resolution, at delivery.
    """
    if not isinstance(url, str) or not url.strip():
        return "must be an https URL"
    if len(url) > MAX_URL_LENGTH:
        return f"at most {MAX_URL_LENGTH} characters"
    try:
        parsed = httpx.URL(url)
        host = parsed.host  # decodes an IDNA name: a malformed one raises here
    except (httpx.InvalidURL, TypeError, ValueError) as exc:  # UnicodeError is a ValueError
        return f"invalid URL: {exc}"
    if not host:
        return "the URL has no host"
    if parsed.userinfo:
        return "credentials in the URL are not allowed; the signature authenticates Ordinaut"
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        literal: ipaddress.IPv4Address | ipaddress.IPv6Address | None = ipaddress.ip_address(
            host.strip("[]")
        )
    except ValueError:
        literal = None
    allowed = allowlist.allows(host, port, literal)
    if parsed.scheme == "http":
        if not allowed:
            return (
                "must be https (http only to a host opened in ORDINAUT_EGRESS_ALLOWLIST, "
                "e.g. by ordinaut dev --allow-loopback-egress)"
            )
    elif parsed.scheme != "https":
        return "must be an https URL"
    if literal is not None and not allowed and (reason := refusal_reason(literal)):
        return (
            f"{reason} address: refused by the egress policy; an operator can allow it with "
            "ORDINAUT_EGRESS_ALLOWLIST"
        )
    return None


def validate(value: Any, *, allowlist: Allowlist) -> tuple[dict[str, Any], list[Any]]:
    """``{"notify": [...]}`` as stored (exactly as sent; ``{}`` without one) and the problems
    found (422 details naming ``payload.notify[i].<field>``)."""
    if value is None:
        return {}, []
    if not isinstance(value, list):
        return {}, [_problem("payload.notify", "must be a list of {url, on, secret}")]
    if len(value) > MAX_TARGETS:
        return {}, [_problem("payload.notify", f"at most {MAX_TARGETS} targets")]
    problems: list[dict[str, Any]] = []
    seen: set[str] = set()
    for i, target in enumerate(value):
        problems += _target_problems(f"payload.notify[{i}]", target, allowlist, seen)
    return ({} if problems else {"notify": value}), problems


def _target_problems(
    at: str, target: Any, allowlist: Allowlist, seen: set[str]
) -> list[dict[str, Any]]:
    """What is wrong with one target (``seen``: the URLs of the targets before it)."""
    if not isinstance(target, Mapping):
        return [_problem(at, "must be an object {url, on, secret}")]
    problems = [
        _problem(f"{at}.{key}", "unknown field (url, on, secret)")
        for key in target
        if key not in FIELDS
    ]
    url: Any = target.get("url")
    if (problem := url_problem(url, allowlist)) is not None:
        problems.append(_problem(f"{at}.url", problem))
    elif url in seen:
        problems.append(_problem(f"{at}.url", "the same URL is listed twice"))
    else:
        seen.add(url)
    on: Any = target.get("on")
    if (
        not isinstance(on, list)
        or not on
        or not all(isinstance(o, str) and o in OUTCOMES for o in on)
        or len(set(on)) != len(on)
    ):
        problems.append(
            _problem(f"{at}.on", f"a non-empty list of {', '.join(OUTCOMES)}, each once")
        )
    secret = target.get("secret")
    if not isinstance(secret, str) or not NAME_RE.match(secret):
        problems.append(
            _problem(
                f"{at}.secret",
                "the name of a stored secret (PUT /secrets/NAME) to sign with: "
                "letters, digits and _, at most 64",
            )
        )
    return problems


def targets_for(notify: Any, outcome: str) -> list[dict[str, Any]]:
    """The stored targets that want ``outcome``."""
    if not isinstance(notify, list):
        return []
    return [t for t in notify if isinstance(t, dict) and outcome in (t.get("on") or ())]


def body(
    *,
    delivery_id: str,
    outcome: str,
    task_id: str,
    task_title: str,
    run_id: str,
    status: str,
    attempt: int,
    error: Any,
    finished_at: str | None,
    run_url: str,
) -> dict[str, Any]:
    """What a notification says: the run's outcome, with a link to the run."""
    return {
        "id": delivery_id,
        "type": topic(outcome),
        "task": {"id": task_id, "title": task_title},
        "run": {
            "id": run_id,
            "status": status,
            "attempt": attempt,
            "error": error,
            "finished_at": finished_at,
            "url": run_url,
        },
    }


def encode(value: Mapping[str, Any]) -> str:
    """The body's exact text (compact, keys sorted): the bytes sent and signed."""
    return json.dumps(value, separators=(",", ":"), sort_keys=True, ensure_ascii=False)


def signature(secret: str, timestamp: int, text: str) -> str:
    """The ``Ordinaut-Signature`` header: ``t=<unix seconds>,v1=<hex HMAC-SHA256>`` of
    ``"<t>.<body>"`` under ``secret``."""
    mac = hmac.new(secret.encode(), f"{timestamp}.{text}".encode(), hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def verify(secret: str, header: str, text: str, *, now: datetime, tolerance_s: int = 300) -> bool:
    """Whether ``header`` signs ``text`` under ``secret`` within ``tolerance_s`` of ``now``
    (what a receiver checks; constant-time comparison)."""
    parts: dict[str, list[str]] = {}
    for item in header.split(","):
        key, _, value = item.strip().partition("=")
        parts.setdefault(key, []).append(value)
    try:
        timestamp = int(parts["t"][0])
    except (KeyError, ValueError):
        return False
    if abs(now.timestamp() - timestamp) > tolerance_s:
        return False
    expected = signature(secret, timestamp, text).rsplit("v1=", 1)[1]
    return any(hmac.compare_digest(expected, v) for v in parts.get("v1", []))


def backoff_s(attempts: int, *, base_s: float, max_s: float) -> float:
    """The wait after failed attempt number ``attempts`` (from 1): ``base_s`` doubled each
    time, at most ``max_s``. Invariant: never negative, never shrinking with ``attempts``."""
    return float(min(max_s, base_s * 2 ** max(0, attempts - 1)))


def retryable_status(code: int) -> bool:
    """A receiver's answer worth trying again: 5xx, 408 Request Timeout, 429 Too Many."""
    return code >= 500 or code in (408, 429)


def run_url(public_url: str, api_host: str, api_port: int, run_id: str) -> str:
    """The run's address on the API: ORDINAUT_PUBLIC_URL, else the API's own address."""
    base = (public_url or f"http://{api_host}:{api_port}").rstrip("/")
    return f"{base}/runs/{run_id}"
