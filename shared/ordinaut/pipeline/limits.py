"""Every bound the pipeline engine enforces (docs/guarantees.md, "Limits"), in one frozen value."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ordinaut.pipeline.interpreter import Budget


@dataclass(frozen=True)
class PipelineLimits:
    """Bounds on pipeline documents, expressions, renders, step results and HTTP egress.

    Build one per process with ``PipelineLimits.from_settings(settings)``; tests construct
    it directly with smaller numbers.
    """

    # the document
    max_steps: int = 50
    max_string_length: int = 10_000
    max_expression_length: int = 2_000
    max_json_depth: int = 32
    max_payload_bytes: int = 256 * 1024
    max_id_length: int = 64
    # execution
    max_step_timeout_s: float = 300
    max_retry_attempts: int = 10
    max_retry_backoff_s: float = 60.0
    # foreach: items one step may go over, and the most of them it may run at once
    max_foreach_items: int = 100
    max_foreach_concurrency: int = 10
    # rendering and evaluation
    max_render_bytes: int = 256 * 1024
    max_expression_work: int = 500_000
    # the hard stop for one evaluation (one render of a step's arguments, one condition, one
    # filter, one transform): work units bound time on an idle machine; this bounds it on a
    # loaded one, so an expression never holds an event loop longer than this
    max_expression_ms: int = 1_000
    # step records
    max_step_output_bytes: int = 64 * 1024
    max_error_message_length: int = 2_000
    # http egress
    http_max_response_bytes: int = 1024 * 1024
    http_timeout_s: float = 30.0
    http_max_redirects: int = 5

    def budget(self) -> Budget:
        """A fresh evaluation ``Budget``: ``max_expression_work`` units and the deadline."""
        from ordinaut.pipeline.interpreter import Budget  # the engine imports the limits

        return Budget(self.max_expression_work, seconds=self.max_expression_ms / 1000)

    @classmethod
    def from_settings(cls, settings: Any, **overrides: Any) -> PipelineLimits:
        """Take the limits that ``Settings`` defines; the rest keep their defaults."""
        values: dict[str, Any] = {}
        for name in (
            "max_steps",
            "max_string_length",
            "max_expression_length",
            "max_step_timeout_s",
            "max_json_depth",
            "max_expression_work",
            "max_expression_ms",
            "max_foreach_items",
            "max_foreach_concurrency",
        ):
            if hasattr(settings, name):
                values[name] = getattr(settings, name)
        if hasattr(settings, "max_body_bytes"):
            values["max_payload_bytes"] = settings.max_body_bytes
        values.update(overrides)
        return cls(**values)
