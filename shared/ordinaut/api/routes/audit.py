"""``GET /audit``: who did what to which object, when, from which request.

Admins read every agent's entries; any other agent reads the entries it made and the ones an
admin made on its objects (an admin retrying its run).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, Query

from ordinaut.api.deps import DepsDep, Page, PagingDep, Principal, require
from ordinaut.api.schemas import AuditEntry
from ordinaut.api.strict import JSONRoute, utc_instant
from ordinaut.errors import ValidationFailed
from ordinaut.store import audit

router = APIRouter(tags=["audit"], route_class=JSONRoute)

Caller = Annotated[Principal, Depends(require(None))]


@router.get("/audit", response_model=Page[AuditEntry])
async def list_audit(
    paging: PagingDep,
    who: Caller,
    deps: DepsDep,
    actor: Annotated[UUID | None, Query(description="only entries by this agent")] = None,
    subject_type: Annotated[
        str | None, Query(min_length=1, max_length=100, description="task, run, agent, secret")
    ] = None,
    subject_id: Annotated[UUID | None, Query(description="only entries about this object")] = None,
    action: Annotated[
        str | None,
        Query(
            min_length=1,
            max_length=100,
            description="an action (`run.retry`), or a prefix ending in `*` (`task.*`)",
        ),
    ] = None,
    frm: Annotated[datetime | None, Query(alias="from", description="entries at or after")] = None,
    until: Annotated[datetime | None, Query(description="entries before")] = None,
) -> Page[AuditEntry]:
    """Audit entries, newest first: ``actor_id`` did ``action`` to ``subject_type``
    ``subject_id`` (owned by ``owner_id`` when that is another agent) at ``created_at``, in
    request ``request_id``."""
    since, before = utc_instant("from", frm), utc_instant("until", until)
    if since is not None and before is not None and before <= since:
        raise ValidationFailed(
            "until must be after from", [{"field": "until", "message": "<= from"}]
        )
    where = audit.AuditFilter(
        viewer=None if who.is_admin else who.agent_id,
        actor=actor,
        subject_type=subject_type,
        subject_id=subject_id,
        action=action,
        since=since,
        until=before,
    )
    pool = await deps.pool()
    rows, total = await audit.list_entries(pool, where, limit=paging.limit, offset=paging.offset)
    return paging.page([AuditEntry.model_validate(r) for r in rows], total)
