"""One error hierarchy; the API maps it to HTTP in one place (``api/errors.py``)."""

from __future__ import annotations

from typing import Any


class OrdinautError(Exception):
    """Root of every domain error. ``code`` is stable and machine-readable."""

    status = 400
    code = "bad_request"

    def __init__(self, message: str, details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class Unauthorized(OrdinautError):
    status = 401
    code = "unauthorized"


class Forbidden(OrdinautError):
    status = 403
    code = "forbidden"


class NotFound(OrdinautError):
    status = 404
    code = "not_found"


class Conflict(OrdinautError):
    status = 409
    code = "conflict"


class InvalidTransition(Conflict):
    code = "invalid_transition"


class PayloadTooLarge(OrdinautError):
    status = 413
    code = "payload_too_large"


class ValidationFailed(OrdinautError):
    """Input is well-formed JSON but not acceptable; ``details`` lists each problem."""

    status = 422
    code = "validation_error"


class InvalidSchedule(ValidationFailed):
    code = "invalid_schedule"


class InvalidPipeline(ValidationFailed):
    code = "invalid_pipeline"


class LimitExceeded(ValidationFailed):
    code = "limit_exceeded"


class RateLimited(OrdinautError):
    status = 429
    code = "rate_limited"


class Unavailable(OrdinautError):
    status = 503
    code = "unavailable"
