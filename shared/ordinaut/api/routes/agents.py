"""``/agents``: agent management (admin) and the token exchange (docs/api.md, "Agents and tokens")."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, Path, Response

from ordinaut import auth
from ordinaut.api.contract import errors
from ordinaut.api.deps import (
    DepsDep,
    Now,
    Page,
    PagingDep,
    Principal,
    RequestId,
    require,
)
from ordinaut.api.schemas import (
    AgentCreate,
    AgentCreated,
    AgentOut,
    AgentUpdate,
    Credentials,
    Me,
    RefreshRequest,
    RevokeRequest,
    TokenOut,
    TokenRequest,
)
from ordinaut.api.strict import JSONRoute
from ordinaut.store import agents as store

router = APIRouter(prefix="/agents", tags=["agents"], route_class=JSONRoute)

Admin = Annotated[Principal, Depends(require(auth.ADMIN))]
Caller = Annotated[Principal, Depends(require(None))]
AgentId = Annotated[UUID, Path(description="The agent's id.")]
# OpenAPI links: what an admin can do next with the agent just created.
AGENT_LINKS = {
    name: {
        "operationId": op,
        "parameters": {"agent_id": "$response.body#/id"},
        "description": text,
    }
    for name, op, text in (
        ("GetAgent", "get_agents__agent_id__get", "Read the agent."),
        ("UpdateAgent", "update_agents__agent_id__put", "Rename it, change its scopes."),
        (
            "RotateCredentials",
            "rotate_credentials_agents__agent_id__credentials_post",
            "New secret.",
        ),
        ("DeleteAgent", "delete_agents__agent_id__delete", "Delete it."),
    )
}
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def _tokens(pair: store.TokenPair, response: Response) -> TokenOut:
    response.headers.update(NO_STORE)
    return TokenOut(
        access_token=pair.access_token,
        refresh_token=pair.refresh_token,
        expires_in=pair.expires_in,
        scope=pair.scope,
    )


@router.post("/auth/token", response_model=TokenOut, responses=errors(401))
async def token(
    body: TokenRequest, response: Response, deps: DepsDep, now: Now, rid: RequestId
) -> TokenOut:
    """Exchange an agent id and secret for an access and a refresh token."""
    pair = await store.exchange_secret(
        await deps.pool(), body.agent_id, body.agent_secret, now, deps.settings, request_id=rid
    )
    return _tokens(pair, response)


@router.post("/auth/refresh", response_model=TokenOut, responses=errors(401))
async def refresh(
    body: RefreshRequest, response: Response, deps: DepsDep, now: Now, rid: RequestId
) -> TokenOut:
    """Rotate a refresh token: a new pair; the old refresh token is revoked."""
    pool = await deps.pool()
    async with pool.acquire() as conn:
        pair = await store.refresh_tokens(
            conn, body.refresh_token, now, deps.settings, request_id=rid
        )
    return _tokens(pair, response)


@router.post("/auth/revoke", status_code=204, response_class=Response)
async def revoke(
    body: RevokeRequest, caller: Caller, deps: DepsDep, now: Now, rid: RequestId
) -> Response:
    """Revoke an access or refresh token and the rest of its login (its token family)."""
    pool = await deps.pool()
    async with pool.acquire() as conn:
        await store.revoke_token(
            conn,
            body.token,
            now,
            actor_id=caller.agent_id,
            actor_is_admin=caller.is_admin,
            request_id=rid,
        )
    return Response(status_code=204)


@router.post(
    "",
    status_code=201,
    response_model=AgentCreated,
    responses={201: {"description": "The agent and its secret.", "links": AGENT_LINKS}},
)
async def create(
    body: AgentCreate, admin: Admin, response: Response, deps: DepsDep, now: Now, rid: RequestId
) -> AgentCreated:
    """Create an agent; its secret is returned once."""
    pool = await deps.pool()
    async with pool.acquire() as conn:
        agent, secret = await store.create_agent(
            conn,
            name=body.name,
            scopes=body.scopes,
            now=now,
            actor_id=admin.agent_id,
            request_id=rid,
        )
    response.headers.update(NO_STORE)
    response.headers["Location"] = f"/agents/{agent.id}"
    return AgentCreated(**agent.as_dict(), agent_secret=secret)


@router.get("", response_model=Page[AgentOut])
async def list_agents(_: Admin, deps: DepsDep, paging: PagingDep) -> Page[AgentOut]:
    """Agents, oldest first, in the list envelope."""
    items, total = await store.list_agents(
        await deps.pool(), limit=paging.limit, offset=paging.offset
    )
    return paging.page([AgentOut.model_validate(a.as_dict()) for a in items], total)


@router.get("/me", response_model=Me)
async def me(caller: Caller, deps: DepsDep) -> Me:
    """The caller's own identity: its id, name and the scopes of the token used (any
    authenticated agent, for itself; no scope needed)."""
    agent = await store.get_agent(await deps.pool(), caller.agent_id)
    return Me(id=agent.id, name=agent.name, scopes=sorted(caller.scopes), is_admin=caller.is_admin)


@router.get("/{agent_id}", response_model=AgentOut)
async def get(agent_id: AgentId, _: Admin, deps: DepsDep) -> dict[str, object]:
    """One agent."""
    return (await store.get_agent(await deps.pool(), agent_id)).as_dict()


@router.put("/{agent_id}", response_model=AgentOut, responses=errors(409))
@router.patch("/{agent_id}", response_model=AgentOut, include_in_schema=False)
async def update(
    agent_id: AgentId, body: AgentUpdate, admin: Admin, deps: DepsDep, now: Now, rid: RequestId
) -> dict[str, object]:
    """Change an agent's name, scopes or active flag. Deactivation revokes its tokens."""
    pool = await deps.pool()
    async with pool.acquire() as conn:
        agent = await store.update_agent(
            conn,
            agent_id,
            now=now,
            name=body.name,
            scopes=body.scopes,
            is_active=body.is_active,
            actor_id=admin.agent_id,
            request_id=rid,
        )
    return agent.as_dict()


@router.delete("/{agent_id}", status_code=204, response_class=Response, responses=errors(409))
async def delete(
    agent_id: AgentId, admin: Admin, deps: DepsDep, now: Now, rid: RequestId
) -> Response:
    """Delete an agent with its tokens, tasks and runs. An admin cannot delete itself (409)."""
    pool = await deps.pool()
    async with pool.acquire() as conn:
        await store.delete_agent(conn, agent_id, now=now, actor_id=admin.agent_id, request_id=rid)
    return Response(status_code=204)


@router.post("/{agent_id}/credentials", response_model=Credentials)
async def rotate_credentials(
    agent_id: AgentId, admin: Admin, response: Response, deps: DepsDep, now: Now, rid: RequestId
) -> Credentials:
    """Replace the agent's secret (returned once) and revoke all its tokens."""
    pool = await deps.pool()
    async with pool.acquire() as conn:
        secret = await store.rotate_secret(
            conn, agent_id, now=now, actor_id=admin.agent_id, request_id=rid
        )
    response.headers.update(NO_STORE)
    return Credentials(agent_id=agent_id, agent_secret=secret)
