"""The audit log: one entry per mutation, who did what to which object, when."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from pydantic import BaseModel, Field


class AuditEntry(BaseModel):
    """One mutation: who did what to which object, when, in which request."""

    id: int = Field(description="The entry's number; later entries have larger ones.")
    created_at: datetime = Field(description="When it happened (UTC).")
    actor_id: UUID | None = Field(
        description="The agent that acted (null: the command line, e.g. `ordinaut agents`)."
    )
    action: str = Field(description="What it did: `task.created`, `run.retry`, `agent.updated`...")
    subject_type: str = Field(description="The kind of object: `task`, `run`, `agent`, `secret`.")
    subject_id: UUID | None = Field(description="The object (null for secrets, named in details).")
    owner_id: UUID | None = Field(
        description="The agent owning the object, when another agent (an admin) acted on it."
    )
    request_id: str | None = Field(description="The request's `X-Request-ID` (null: not HTTP).")
    details: dict[str, Any] = Field(description="What changed (never a secret's value).")
