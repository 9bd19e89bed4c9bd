"""Every bound the pipeline engine enforces (docs/guarantees.md, "Limits"), in one frozen value.

Each field says what it bounds (``doc``, shown in docs/pipeline.md); ``SETTINGS`` names the
``Settings`` field (``ORDINAUT_`` variable) that sets it in a deployment, where one does.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ordinaut.pipeline.interpreter import Budget


def _bound(default: Any, doc: str) -> Any:
    return field(default=default, metadata={"doc": doc})


@dataclass(frozen=True)
class PipelineLimits:
    """Bounds on pipeline documents, expressions, renders, step results and HTTP egress.

    Build one per process with ``PipelineLimits.from_settings(settings)``; tests construct
    it directly with smaller numbers.
    """

    # the document
    max_steps: int = _bound(50, "steps in one pipeline")
    max_string_length: int = _bound(10_000, "characters in any string of a payload, keys too")
    max_expression_length: int = _bound(2_000, "characters in one `${...}` expression")
    max_json_depth: int = _bound(
        32, "nesting of a payload, and of JSON an expression parses (`from_json`)"
    )
    max_payload_bytes: int = _bound(256 * 1024, "bytes of a payload (the request body bound)")
    max_id_length: int = _bound(64, "characters in a step's `id` or `save_as`")
    # execution
    max_step_timeout_s: float = _bound(
        300, "seconds a step's `timeout_seconds` may ask for (per attempt, per item)"
    )
    max_retry_attempts: int = _bound(10, "a step's `retry.attempts`")
    max_retry_backoff_s: float = _bound(60.0, "a step's `retry.backoff_seconds`")
    # foreach: items one step may go over, and the most of them it may run at once
    max_foreach_items: int = _bound(
        100, "items one `foreach` step may go over; more fails the step (`limit_exceeded`)"
    )
    max_foreach_concurrency: int = _bound(10, "the largest `max_concurrency` of a `foreach` step")
    # rendering and evaluation
    max_render_bytes: int = _bound(
        256 * 1024, "bytes of one step's rendered arguments, and of any string a function builds"
    )
    max_expression_work: int = _bound(
        500_000, "work units one evaluation may spend, charged by the size of the values it touches"
    )
    # the hard stop for one evaluation (one render of a step's arguments, one condition, one
    # filter, one transform): work units bound time on an idle machine; this bounds it on a
    # loaded one, so an expression never holds an event loop longer than this
    max_expression_ms: int = _bound(
        1_000, "milliseconds one evaluation may take (a render, a condition, a `transform`)"
    )
    # step records
    max_step_output_bytes: int = _bound(
        64 * 1024,
        "bytes of a step's input and output as recorded on the run (a larger value is recorded "
        "truncated; later steps still get all of it)",
    )
    max_error_message_length: int = _bound(2_000, "characters of a recorded error message")
    # http egress
    http_max_response_bytes: int = _bound(1024 * 1024, "bytes of an `http.request` response body")
    http_timeout_s: float = _bound(
        30.0, "seconds one `http.request` exchange may take (its default step timeout)"
    )
    http_max_redirects: int = _bound(5, "redirects `http.request` follows, each checked again")

    def budget(self) -> Budget:
        """A fresh evaluation ``Budget``: ``max_expression_work`` units and the deadline."""
        from ordinaut.pipeline.interpreter import Budget  # the engine imports the limits

        return Budget(self.max_expression_work, seconds=self.max_expression_ms / 1000)

    @classmethod
    def from_settings(cls, settings: Any, **overrides: Any) -> PipelineLimits:
        """Take the limits that ``Settings`` defines; the rest keep their defaults."""
        values: dict[str, Any] = {}
        for name, setting in SETTINGS.items():
            if hasattr(settings, setting):
                values[name] = getattr(settings, setting)
        values.update(overrides)
        if cls is PipelineLimits:
            try:
                return _limits(tuple(values.items()))
            except TypeError:  # a value that cannot be a cache key (unhashable): build it
                pass
        return cls(**values)


@functools.lru_cache(maxsize=64)
def _limits(values: tuple[tuple[str, Any], ...]) -> PipelineLimits:
    # The value is frozen, so one per distinct set of values serves every caller: a task
    # write reads the limits on each request (building the dataclass cost more than using it).
    return PipelineLimits(**dict(values))


# limit -> the Settings field (ORDINAUT_<NAME>) that sets it; the others are fixed in code
SETTINGS = {
    "max_steps": "max_steps",
    "max_string_length": "max_string_length",
    "max_expression_length": "max_expression_length",
    "max_step_timeout_s": "max_step_timeout_s",
    "max_json_depth": "max_json_depth",
    "max_expression_work": "max_expression_work",
    "max_expression_ms": "max_expression_ms",
    "max_foreach_items": "max_foreach_items",
    "max_foreach_concurrency": "max_foreach_concurrency",
    "max_payload_bytes": "max_body_bytes",
}
