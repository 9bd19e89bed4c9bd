"""The health checks' answers; ``Unhealthy`` is the health document and the error envelope in
one 503 body."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from ordinaut.api.schemas.common import ErrorEnvelope


class Live(BaseModel):
    status: str = Field(description="Always `ok`.")


class Ready(BaseModel):
    status: str = Field(description="`ready`.")
    database_latency_ms: float = Field(description="Round trip of `SELECT 1`.")


class Health(BaseModel):
    status: str = Field(description="`healthy`, `degraded` (200) or `unhealthy` (503).")
    checked_at: datetime = Field(description="When the check ran (UTC).")
    components: dict[str, dict[str, Any]] = Field(
        description="`database`, `redis`, `scheduler` and `workers`, each with its `status` "
        "and what was measured."
    )


class Unhealthy(ErrorEnvelope):
    """The health document (``status``, ``components`` or ``database``) and the error
    envelope in one body."""

    status: str = Field(description="`unhealthy` or `unavailable`.")
