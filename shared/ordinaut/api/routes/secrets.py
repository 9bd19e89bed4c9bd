"""Secrets: write-only named values a pipeline reads as ``${secrets.NAME}`` in tool arguments."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request, Response
from fastapi.encoders import jsonable_encoder
from pydantic import BaseModel, ConfigDict, Field

from ordinaut.api.deps import Deps, Principal, get_deps, id_of, require
from ordinaut.api.strict import JSONRoute
from ordinaut.errors import NotFound
from ordinaut.secrets import MAX_VALUE_BYTES, SecretBox, check_secret
from ordinaut.store import audit, secrets

router = APIRouter(tags=["secrets"], route_class=JSONRoute)
WRITE = Depends(require("tasks:write"))


SecretName = Annotated[
    str,
    Path(
        max_length=200,
        description="Letters, digits and `_`, starting with a letter (`WEATHER_API_KEY`).",
    ),
]


class SecretIn(BaseModel):
    """A secret's value (write-only)."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"value": "s3cr3t-t0ken"}]}
    )
    value: str = Field(
        min_length=1, max_length=MAX_VALUE_BYTES, description="Stored encrypted; never returned."
    )


class SecretInfo(BaseModel):
    name: str = Field(description="The secret's name.")
    created_at: datetime = Field(description="When it was first stored (UTC).")
    updated_at: datetime = Field(description="When its value last changed (UTC).")


class SecretNames(BaseModel):
    items: list[SecretInfo] = Field(description="The caller's secrets, by name.")


@router.put("/secrets/{name}", status_code=204, response_class=Response)
async def put_secret(
    name: SecretName,
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
            request_id=id_of(request),
        )
    return Response(status_code=204)


@router.get("/secrets", response_model=SecretNames)
async def list_secrets(who: Principal = WRITE, deps: Deps = Depends(get_deps)) -> dict[str, Any]:
    """Names and times only."""
    pool = await deps.pool()
    return jsonable_encoder({"items": await secrets.names(pool, who.agent_id)})


@router.delete("/secrets/{name}", status_code=204, response_class=Response)
async def delete_secret(
    name: SecretName, request: Request, who: Principal = WRITE, deps: Deps = Depends(get_deps)
) -> Response:
    """Delete a secret; runs that read it fail from then on."""
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
            request_id=id_of(request),
        )
    return Response(status_code=204)
