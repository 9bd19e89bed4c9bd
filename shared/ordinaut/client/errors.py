"""Typed exceptions for the API's error envelope ``{"error": {code, message, details}, request_id}``.

The class follows the HTTP status; ``code`` keeps the API's finer, stable name (for example
``invalid_schedule`` or ``invalid_transition``), so callers can branch on either.
"""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx


class OrdinautClientError(Exception):
    """Root of everything the client raises."""


class OrdinautConnectionError(OrdinautClientError):
    """The server could not be reached (refused, DNS, timeout) even after the allowed retries."""


class OrdinautAPIError(OrdinautClientError):
    """The API answered with an error status."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: Any = None,
        request_id: str | None = None,
        *,
        retry_after: float | None = None,
    ) -> None:
        self.status = status
        self.code = code
        self.message = message
        self.details = details
        self.request_id = request_id
        self.retry_after = retry_after
        super().__init__(self._text())

    def _text(self) -> str:
        text = f"{self.status} {self.code}: {self.message}"
        return f"{text} (request {self.request_id})" if self.request_id else text

    @property
    def problems(self) -> list[dict[str, str]]:
        """``details`` as a list of ``{"field", "message"}`` when it names fields, else empty."""
        items = self.details if isinstance(self.details, list) else []
        out = []
        for item in items:
            if isinstance(item, dict) and "field" in item:
                out.append({"field": str(item["field"]), "message": str(item.get("message", ""))})
        return out


class BadRequestError(OrdinautAPIError):
    """400: malformed request (for example a body that is not JSON)."""


class AuthError(OrdinautAPIError):
    """401: no token, a bad or expired token, or wrong agent credentials."""


class PermissionDeniedError(AuthError):
    """403: authenticated, but the token lacks a scope this route needs."""


class NotFoundError(OrdinautAPIError):
    """404: no such resource, or it belongs to another agent (the API does not tell which)."""


class ConflictError(OrdinautAPIError):
    """409: the resource's state forbids this (for example pausing a paused task)."""


class PayloadTooLargeError(OrdinautAPIError):
    """413: the body exceeds a documented size limit."""


class ValidationError(OrdinautAPIError):
    """422: the input was read but is not acceptable; ``problems`` names each field."""

    def _text(self) -> str:
        lines = [super()._text()]
        lines += [f"  {p['field']}: {p['message']}" for p in self.problems]
        return "\n".join(lines)


class RateLimitedError(OrdinautAPIError):
    """429: too many requests; ``retry_after`` says when to try again (seconds)."""


class UnavailableError(OrdinautAPIError):
    """503: a backing service (the database) is unreachable; try again later."""


class ServerError(OrdinautAPIError):
    """500 and other unexpected statuses: a bug on the server, worth reporting with request_id."""


_BY_STATUS: dict[int, type[OrdinautAPIError]] = {
    400: BadRequestError,
    401: AuthError,
    403: PermissionDeniedError,
    404: NotFoundError,
    405: BadRequestError,
    409: ConflictError,
    413: PayloadTooLargeError,
    415: BadRequestError,
    422: ValidationError,
    429: RateLimitedError,
    503: UnavailableError,
}


def retry_after_seconds(response: httpx.Response) -> float | None:
    """The ``Retry-After`` header in seconds (delta form; an HTTP date is read too), or None."""
    raw = response.headers.get("retry-after")
    if raw is None:
        return None
    raw = raw.strip()
    try:
        return max(0.0, float(raw))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def error_from_response(response: httpx.Response) -> OrdinautAPIError:
    """The typed exception for an error response, from its envelope when it has one."""
    status = response.status_code
    code, message, details, request_id = f"http_{status}", response.reason_phrase, None, None
    try:
        body = response.json()
    except ValueError:
        body = None
        text = response.text.strip()
        if text:
            message = text[:300]
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict):
            code = str(error.get("code") or code)
            message = str(error.get("message") or message)
            details = error.get("details")
        rid = body.get("request_id")
        request_id = str(rid) if rid else None
    request_id = request_id or response.headers.get("x-request-id")
    cls = _BY_STATUS.get(status, ServerError if status >= 500 else OrdinautAPIError)
    return cls(
        status,
        code,
        message,
        details,
        request_id,
        retry_after=retry_after_seconds(response),
    )
