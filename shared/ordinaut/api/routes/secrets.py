"""Secrets: write-only named values a pipeline reads as ``${secrets.NAME}`` in tool arguments."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.encoders import jsonable_encoder
from pydantic import BaseModel, ConfigDict, Field

from ordinaut.api.deps import Deps, Principal, get_deps, request_id, require
from ordinaut.api.strict import JSONRoute
from ordinaut.errors import NotFound
from ordinaut.secrets import MAX_VALUE_BYTES, SecretBox, check_secret
from ordinaut.store import audit, secrets

router = APIRouter(tags=["secrets"], route_class=JSONRoute)
WRITE = Depends(require("tasks:write"))


class SecretIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    value: str = Field(min_length=1, max_length=MAX_VALUE_BYTES)


@router.put("/secrets/{name}", status_code=204)
async def put_secret(
    name: str,
    body: SecretIn,
    request: Request,
    who: Principal = WRITE,
    deps: Deps = Depends(get_deps),
) -> Response:
    """Store or replace a secret; its value is never returned by any route."""
    check_secret(name, body.value)
    sealed = SecretBox(deps.settings.secrets_key).seal(body.value)
    now = deps.clock.now()
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
            request_id=request_id(request),
        )
    return Response(status_code=204)


@router.get("/secrets")
async def list_secrets(who: Principal = WRITE, deps: Deps = Depends(get_deps)) -> dict[str, Any]:
    """Names and times only."""
    pool = await deps.pool()
    return jsonable_encoder({"items": await secrets.names(pool, who.agent_id)})


@router.delete("/secrets/{name}", status_code=204)
async def delete_secret(
    name: str, request: Request, who: Principal = WRITE, deps: Deps = Depends(get_deps)
) -> Response:
    check_secret(name, None)
    now = deps.clock.now()
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
            request_id=request_id(request),
        )
    return Response(status_code=204)
