"""Whose rows a request reads: the caller's own, or (admins only) another agent's or all.

``GET /tasks``, ``GET /runs`` and ``GET /audit`` take ``owner=AGENT_ID`` or ``owner=*``; an agent
without the admin scope gets 403 for the parameter itself, so tenancy (docs/guarantees.md,
"Tenancy and authentication") never depends on which id is asked for.
"""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import Query

from ordinaut.api.deps import Principal
from ordinaut.errors import Forbidden, ValidationFailed

EVERY_AGENT = "*"

Owner = Annotated[
    str | None,
    Query(
        max_length=36,
        description="admin only: read this agent's rows (an agent id), or every agent's (`*`)",
    ),
]


def owner_filter(who: Principal, owner: str | None) -> UUID | None:
    """The owner to filter by: the caller without ``owner``; None means every agent."""
    if owner is None:
        return who.agent_id
    if not who.is_admin:
        raise Forbidden(
            "only an admin may read other agents' rows (owner)",
            {"field": "query.owner", "required_scope": "admin"},
        )
    if owner == EVERY_AGENT:
        return None
    try:
        return UUID(owner)
    except ValueError:
        raise ValidationFailed(
            "owner must be an agent id or *",
            [{"field": "query.owner", "message": "an agent id (UUID) or *"}],
        ) from None


def acting_owner(who: Principal, owner: UUID | None) -> UUID:
    """The owner a run action applies to: admins act on any agent's run, others on theirs."""
    if who.is_admin and owner is not None:
        return owner
    return who.agent_id
