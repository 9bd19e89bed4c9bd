"""Secrets: write-only named values a pipeline reads as ``${secrets.NAME}`` in tool arguments."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Response

from ordinaut.api.deps import DepsDep, Now, Principal, RequestId, require
from ordinaut.api.schemas import SecretIn, SecretInfo, SecretNames
from ordinaut.api.strict import JSONRoute
from ordinaut.errors import NotFound
from ordinaut.secrets import SecretBox, check_secret
from ordinaut.store import audit, secrets

router = APIRouter(tags=["secrets"], route_class=JSONRoute)
Writer = Annotated[Principal, Depends(require("tasks:write"))]


SecretName = Annotated[
    str,
    Path(
        max_length=200,
        description="Letters, digits and `_`, starting with a letter (`WEATHER_API_KEY`).",
    ),
]


@router.put("/secrets/{name}", status_code=204, response_class=Response)
async def put_secret(
    name: SecretName, body: SecretIn, who: Writer, deps: DepsDep, now: Now, rid: RequestId
) -> Response:
    """Store or replace a secret; its value is never returned by any route."""
    check_secret(name, body.value)
    sealed = SecretBox(deps.settings.secrets_key).seal(body.value)
    pool = await deps.pool()
    async with pool.acquire() as conn, conn.transaction():
        created = await secrets.put(conn, who.agent_id, name, sealed, now)
        await audit.record(
            conn,
            actor_id=who.agent_id,
            action="secret.created" if created else "secret.updated",
            subject_type="secret",
            subject_id=None,
            now=now,
            details={"name": name},
            request_id=rid,
        )
    return Response(status_code=204)


@router.get("/secrets", response_model=SecretNames)
async def list_secrets(who: Writer, deps: DepsDep) -> SecretNames:
    """Names and times only."""
    pool = await deps.pool()
    names = await secrets.names(pool, who.agent_id)
    return SecretNames(items=[SecretInfo.model_validate(n) for n in names])


@router.delete("/secrets/{name}", status_code=204, response_class=Response)
async def delete_secret(
    name: SecretName, who: Writer, deps: DepsDep, now: Now, rid: RequestId
) -> Response:
    """Delete a secret; runs that read it fail from then on."""
    check_secret(name, None)
    pool = await deps.pool()
    async with pool.acquire() as conn, conn.transaction():
        if not await secrets.delete(conn, who.agent_id, name):
            raise NotFound(f"secret {name} not found", {"name": name})
        await audit.record(
            conn,
            actor_id=who.agent_id,
            action="secret.deleted",
            subject_type="secret",
            subject_id=None,
            now=now,
            details={"name": name},
            request_id=rid,
        )
    return Response(status_code=204)
