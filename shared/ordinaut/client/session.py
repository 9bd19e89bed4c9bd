"""What the async and the sync client share: credentials, the retry policy, reading answers.

Only the I/O differs between the two clients; every decision (retry or not, how long to wait,
renew the token or not, which exception) is made here, in plain functions.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx

from ordinaut import __version__
from ordinaut.client.calls import Call
from ordinaut.client.errors import error_from_response, retry_after_seconds
from ordinaut.client.models import Tokens

T = TypeVar("T")

DEFAULT_URL = "http://127.0.0.1:8080"
USER_AGENT = f"ordinaut-client/{__version__}"

# Errors raised before the request left this machine: resending can never do anything twice.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded retries: at most ``max_retries`` more attempts, never waiting longer than
    ``max_wait_s`` at once. A ``Retry-After`` above that bound is honoured by giving up (the
    error carries ``retry_after``) rather than by retrying early."""

    max_retries: int = 3
    max_wait_s: float = 30.0
    backoff_s: float = 0.5

    def wait(self, attempt: int, retry_after: float | None) -> float | None:
        """Seconds to wait before retry ``attempt + 1``, or None to stop."""
        if attempt >= self.max_retries:
            return None
        if retry_after is not None:
            return retry_after if retry_after <= self.max_wait_s else None
        # Exponential with jitter, so many clients hit by one outage do not return in step.
        return min(self.max_wait_s, self.backoff_s * 2.0**attempt) * random.uniform(0.5, 1.0)

    def after_response(
        self, call: Call[Any], response: httpx.Response, attempt: int
    ) -> float | None:
        status = response.status_code
        if status == 429 or (status == 503 and call.safe and not call.raw_errors):
            return self.wait(attempt, retry_after_seconds(response))
        return None

    def after_transport_error(
        self, call: Call[Any], exc: httpx.TransportError, attempt: int
    ) -> float | None:
        if isinstance(exc, _NOT_SENT) or call.safe:
            return self.wait(attempt, None)
        return None


@dataclass
class Credentials:
    """The client's token and what it can renew it with (a refresh token, or the agent's id
    and secret). ``on_tokens`` hears every new pair, so a caller can persist it."""

    token: str | None = None
    refresh_token: str | None = None
    agent_id: str | None = None
    agent_secret: str | None = None
    on_tokens: Callable[[Tokens], None] | None = field(default=None, repr=False)

    def __repr__(self) -> str:  # never print a secret
        return f"Credentials(agent_id={self.agent_id!r}, token={'set' if self.token else None})"

    @property
    def can_exchange(self) -> bool:
        return bool(self.agent_id and self.agent_secret)

    @property
    def can_renew(self) -> bool:
        return self.can_exchange or bool(self.refresh_token)

    def needs_first_token(self, call: Call[Any]) -> bool:
        return call.auth and self.token is None and self.can_exchange

    def headers(self, call: Call[Any]) -> dict[str, str]:
        headers = dict(call.headers)
        if call.auth and self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        return headers

    def apply(self, tokens: Tokens) -> None:
        self.token = tokens.access_token
        self.refresh_token = tokens.refresh_token
        if self.on_tokens is not None:
            self.on_tokens(tokens)


def should_renew(
    call: Call[Any], response: httpx.Response, creds: Credentials, renewed: bool
) -> bool:
    """A 401 on an authenticated call is worth one renewal when there is something to renew with."""
    return response.status_code == 401 and call.auth and not renewed and creds.can_renew


def read(call: Call[T], response: httpx.Response) -> T:
    """The parsed answer, or the typed exception for an error status."""
    if response.status_code >= 400 and not call.raw_errors:
        raise error_from_response(response)
    data = response.json() if response.content else None
    return call.parse(data)


def connection_message(base_url: str, exc: httpx.TransportError) -> str:
    reason = str(exc) or type(exc).__name__
    return f"cannot reach the Ordinaut API at {base_url}: {reason}"


def normalize_url(url: str) -> str:
    """The base URL without a trailing slash (how credentials are keyed, too)."""
    url = url.strip()
    if "://" not in url:
        url = "http://" + url
    return url.rstrip("/")
