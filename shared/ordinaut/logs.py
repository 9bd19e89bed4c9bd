"""Structured JSON logs carrying request, task, run, attempt and worker ids."""

from __future__ import annotations

import contextvars
import logging
import sys
from datetime import UTC, datetime
from typing import Any

import orjson

CONTEXT_FIELDS = ("request_id", "task_id", "run_id", "attempt", "worker_id")
# AWS SDK and HTTP client loggers print request and response bodies at DEBUG, Secrets Manager
# values included: never below WARNING, whatever ORDINAUT_LOG_LEVEL says.
QUIET_LOGGERS = ("boto3", "botocore", "urllib3", "s3transfer", "aiobotocore")
_EMPTY: dict[str, Any] = {}  # never mutated: bind() always sets a new dict
_context: contextvars.ContextVar[dict[str, Any]] = contextvars.ContextVar(
    "ordinaut_log_context", default=_EMPTY
)
# uvicorn adds color_message (ANSI codes) to its records: never worth a field
_RESERVED = set(vars(logging.makeLogRecord({})).keys()) | {"message", "asctime", "color_message"}


def bind(**fields: Any) -> contextvars.Token[dict[str, Any]]:
    """Add fields to every log line of the current task/context; returns a token to reset."""
    merged = {**_context.get(), **{k: v for k, v in fields.items() if v is not None}}
    return _context.set(merged)


def reset(token: contextvars.Token[dict[str, Any]]) -> None:
    _context.reset(token)


def current() -> dict[str, Any]:
    return dict(_context.get())


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        doc.update(_context.get())
        for key, value in vars(record).items():
            if key not in _RESERVED and not key.startswith("_"):
                doc[key] = value
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(doc, default=str).decode()


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        extra = {**_context.get()}
        for key, value in vars(record).items():
            if key not in _RESERVED and not key.startswith("_"):
                extra[key] = value
        tail = " ".join(f"{k}={v}" for k, v in extra.items())
        base = f"{record.levelname:<7} {record.name}: {record.getMessage()}"
        text = f"{base} {tail}" if tail else base
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return text


def quiet_libraries() -> None:
    """Keep ``QUIET_LOGGERS`` at WARNING or above (they would log secrets at DEBUG)."""
    for name in QUIET_LOGGERS:
        logger = logging.getLogger(name)
        if logger.level < logging.WARNING:
            logger.setLevel(logging.WARNING)


def configure(level: str = "INFO", *, json_output: bool = True) -> None:
    """Install one stderr handler on the root logger (idempotent)."""
    root = logging.getLogger()
    for h in list(root.handlers):
        if getattr(h, "_ordinaut", False):
            root.removeHandler(h)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if json_output else TextFormatter())
    handler._ordinaut = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level.upper())
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
    quiet_libraries()
    # APScheduler logs every job execution at INFO; the tick logs what matters itself
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
