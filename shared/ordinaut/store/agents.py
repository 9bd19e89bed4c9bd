"""Agents, their hashed secrets and their bearer tokens.

Tokens are stored only as SHA-256 digests and checked against this table on every request, so
revocation (a row update) holds in every process at once. A login creates a token *family*
(one access + one refresh token); refreshing rotates the refresh token inside the family, and
presenting a refresh token that was already rotated revokes the whole family (reuse detection).
Every mutation writes its audit row in the same transaction. No secret or token is ever logged.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import asyncpg

from ordinaut import auth
from ordinaut.config import Settings
from ordinaut.errors import Conflict, NotFound
from ordinaut.store import audit
from ordinaut.store.db import Connection, connection, one_row

SUBJECT = "agent"
BAD_CREDENTIALS = "invalid agent id or secret"
BAD_TOKEN = "invalid, expired or revoked token"


@dataclass(frozen=True)
class Agent:
    id: UUID
    name: str
    scopes: tuple[str, ...]
    is_active: bool
    created_at: datetime
    updated_at: datetime

    @property
    def is_admin(self) -> bool:
        return auth.ADMIN in self.scopes

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "scopes": list(self.scopes),
            "is_active": self.is_active,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }


@dataclass(frozen=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_in: int
    scope: str
    token_type: str = "bearer"


@dataclass(frozen=True)
class Grant:
    """What a valid access token allows: its agent and its effective scopes."""

    agent_id: UUID
    scopes: frozenset[str]


def _agent(row: asyncpg.Record) -> Agent:
    return Agent(
        id=row["id"],
        name=row["name"],
        scopes=tuple(row["scopes"]),
        is_active=row["is_active"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


def _uuid(value: str | UUID) -> UUID | None:
    if isinstance(value, UUID):
        return value
    try:
        return UUID(value)
    except (ValueError, TypeError, AttributeError):
        return None


INSERT_AGENT = """
INSERT INTO agents (id, name, scopes, secret_hash, is_active, created_at, updated_at)
VALUES ($1, $2, $3, $4, true, $5, $5)
RETURNING id, name, scopes, is_active, created_at, updated_at
"""


async def create_agent(
    conn: Connection,
    *,
    name: str,
    scopes: Sequence[str],
    now: datetime,
    actor_id: UUID | None = None,
    request_id: str | None = None,
) -> tuple[Agent, str]:
    """Create an active agent; returns it with its one-time secret (stored only hashed)."""
    canonical = auth.normalize_scopes(tuple(scopes))
    secret = auth.new_secret()
    secret_hash = await asyncio.to_thread(auth.hash_secret, secret)
    async with conn.transaction():
        row = await conn.fetchrow(
            INSERT_AGENT, uuid.uuid4(), name, list(canonical), secret_hash, now
        )
        agent = _agent(one_row(row))
        await audit.record(
            conn,
            actor_id=actor_id,
            action="agent.created",
            subject_type=SUBJECT,
            subject_id=agent.id,
            now=now,
            details={"name": name, "scopes": list(canonical)},
            request_id=request_id,
        )
    return agent, secret


SELECT_AGENT = """
SELECT id, name, scopes, is_active, created_at, updated_at
FROM agents WHERE id = $1
"""


async def get_agent(conn: Connection | asyncpg.Pool, agent_id: UUID) -> Agent:
    """One agent; NotFound when it does not exist."""
    row = await conn.fetchrow(SELECT_AGENT, agent_id)
    if row is None:
        raise NotFound("agent not found")
    return _agent(row)


LIST_AGENTS = """
SELECT id, name, scopes, is_active, created_at, updated_at
FROM agents ORDER BY created_at, id LIMIT $1 OFFSET $2
"""
COUNT_AGENTS = "SELECT count(*) FROM agents"


async def list_agents(
    conn: Connection | asyncpg.Pool, *, limit: int, offset: int
) -> tuple[list[Agent], int]:
    """A page of agents (oldest first) and the total count."""
    rows = await conn.fetch(LIST_AGENTS, limit, offset)
    total = await conn.fetchval(COUNT_AGENTS)
    return [_agent(r) for r in rows], int(total)


UPDATE_AGENT = """
WITH old AS (SELECT id, name, scopes, is_active FROM agents WHERE id = $1 FOR UPDATE)
UPDATE agents a
SET name = coalesce($2, a.name),
    scopes = coalesce($3, a.scopes),
    is_active = coalesce($4, a.is_active),
    updated_at = $5
FROM old
WHERE a.id = old.id
RETURNING a.id, a.name, a.scopes, a.is_active, a.created_at, a.updated_at,
    old.name AS old_name, old.scopes AS old_scopes, old.is_active AS old_is_active
"""
REVOKE_AGENT_TOKENS = """
UPDATE agent_tokens SET revoked_at = $2
WHERE agent_id = $1 AND revoked_at IS NULL AND expires_at > $2
"""


async def update_agent(
    conn: Connection,
    agent_id: UUID,
    *,
    now: datetime,
    name: str | None = None,
    scopes: Sequence[str] | None = None,
    is_active: bool | None = None,
    actor_id: UUID | None = None,
    request_id: str | None = None,
) -> Agent:
    """Change name, scopes or active flag (None leaves a field alone).

    An agent cannot deactivate itself or drop its own admin scope (it would lock itself out).
    Deactivation revokes the agent's tokens; scope changes apply to live tokens at once because
    a token's effective scopes are intersected with the agent's current ones.
    """
    canonical = None if scopes is None else list(auth.normalize_scopes(tuple(scopes)))
    if actor_id is not None and actor_id == agent_id:
        if is_active is False:
            raise Conflict("an agent cannot deactivate itself")
        if canonical is not None and auth.ADMIN not in canonical:
            raise Conflict("an admin cannot remove its own admin scope")
    async with conn.transaction():
        row = await conn.fetchrow(UPDATE_AGENT, agent_id, name, canonical, is_active, now)
        if row is None:
            raise NotFound("agent not found")
        agent = _agent(one_row(row))
        changes: dict[str, Any] = {}
        if row["old_name"] != agent.name:
            changes["name"] = {"from": row["old_name"], "to": agent.name}
        if tuple(row["old_scopes"]) != agent.scopes:
            changes["scopes"] = {"from": list(row["old_scopes"]), "to": list(agent.scopes)}
        if row["old_is_active"] != agent.is_active:
            changes["is_active"] = {"from": row["old_is_active"], "to": agent.is_active}
            if not agent.is_active:
                await conn.execute(REVOKE_AGENT_TOKENS, agent_id, now)
        await audit.record(
            conn,
            actor_id=actor_id,
            action="agent.updated",
            subject_type=SUBJECT,
            subject_id=agent_id,
            now=now,
            details={"changes": changes},
            request_id=request_id,
            owner_id=agent_id,  # the agent sees what an admin did to it
        )
    return agent


DELETE_AGENT = "DELETE FROM agents WHERE id = $1 RETURNING name"


async def delete_agent(
    conn: Connection,
    agent_id: UUID,
    *,
    now: datetime,
    actor_id: UUID | None = None,
    request_id: str | None = None,
) -> None:
    """Delete an agent and, by cascade, its tokens, tasks and runs. Not oneself (Conflict)."""
    if actor_id is not None and actor_id == agent_id:
        raise Conflict("an agent cannot delete itself")
    async with conn.transaction():
        name = await conn.fetchval(DELETE_AGENT, agent_id)
        if name is None:
            raise NotFound("agent not found")
        await audit.record(
            conn,
            actor_id=actor_id,
            action="agent.deleted",
            subject_type=SUBJECT,
            subject_id=agent_id,
            now=now,
            details={"name": name},
            request_id=request_id,
        )


UPDATE_SECRET = "UPDATE agents SET secret_hash = $2, updated_at = $3 WHERE id = $1 RETURNING id"


async def rotate_secret(
    conn: Connection,
    agent_id: UUID,
    *,
    now: datetime,
    actor_id: UUID | None = None,
    request_id: str | None = None,
) -> str:
    """Replace the agent's secret and revoke all its tokens; returns the new one-time secret."""
    secret = auth.new_secret()
    secret_hash = await asyncio.to_thread(auth.hash_secret, secret)
    async with conn.transaction():
        if await conn.fetchval(UPDATE_SECRET, agent_id, secret_hash, now) is None:
            raise NotFound("agent not found")
        revoked = await conn.execute(REVOKE_AGENT_TOKENS, agent_id, now)
        await audit.record(
            conn,
            actor_id=actor_id,
            action="agent.credentials_rotated",
            subject_type=SUBJECT,
            subject_id=agent_id,
            now=now,
            details={"tokens_revoked": _count(revoked)},
            request_id=request_id,
            owner_id=agent_id,  # the agent sees what an admin did to it
        )
    return secret


def _count(status: str) -> int:
    """Row count from an asyncpg command status such as ``UPDATE 3``."""
    try:
        return int(status.rsplit(" ", 1)[-1])
    except ValueError:
        return 0


SELECT_ACTIVE_SCOPES = "SELECT scopes FROM agents WHERE id = $1 AND is_active"
PURGE_EXPIRED_TOKENS = "DELETE FROM agent_tokens WHERE agent_id = $1 AND expires_at <= $2"
INSERT_TOKEN_PAIR = """
INSERT INTO agent_tokens (token_hash, agent_id, kind, family, scopes, created_at, expires_at)
VALUES ($1, $3, 'access', $4, $5, $6, $7), ($2, $3, 'refresh', $4, $5, $6, $8)
"""


async def issue_tokens(
    conn: Connection,
    agent_id: UUID,
    now: datetime,
    settings: Settings,
    *,
    family: UUID | None = None,
    request_id: str | None = None,
) -> TokenPair:
    """A new access + refresh token for an active agent (a new family unless one is given).

    The tokens carry the agent's scopes at issue time; NotFound if the agent is missing or
    inactive. Expired token rows of the agent are purged on the way.
    """
    access, access_hash = auth.new_token("access")
    refresh, refresh_hash = auth.new_token("refresh")
    fam = family or uuid.uuid4()
    async with conn.transaction():
        scopes = await conn.fetchval(SELECT_ACTIVE_SCOPES, agent_id)
        if scopes is None:
            raise NotFound("agent not found")
        await conn.execute(PURGE_EXPIRED_TOKENS, agent_id, now)
        await conn.execute(
            INSERT_TOKEN_PAIR,
            access_hash,
            refresh_hash,
            agent_id,
            fam,
            scopes,
            now,
            now + timedelta(seconds=settings.access_token_ttl_s),
            now + timedelta(seconds=settings.refresh_token_ttl_s),
        )
        await audit.record(
            conn,
            actor_id=agent_id,
            action="agent.token_issued" if family is None else "agent.token_refreshed",
            subject_type=SUBJECT,
            subject_id=agent_id,
            now=now,
            details={"family": str(fam)},
            request_id=request_id,
        )
    return TokenPair(
        access_token=access,
        refresh_token=refresh,
        expires_in=settings.access_token_ttl_s,
        scope=auth.scope_string(list(scopes)),
    )


SELECT_SECRET_HASH = "SELECT secret_hash FROM agents WHERE id = $1 AND is_active"


async def exchange_secret(
    db: asyncpg.Pool | Connection,
    agent_id: str | UUID,
    secret: str,
    now: datetime,
    settings: Settings,
    *,
    request_id: str | None = None,
) -> TokenPair:
    """Check an agent's secret and issue a token pair; InvalidCredentials otherwise.

    An unknown, malformed or inactive id costs one full hash verification too, so response
    time does not reveal which ids exist. Given a pool, no connection is held while hashing.
    """
    parsed = _uuid(agent_id)
    stored = None if parsed is None else await db.fetchval(SELECT_SECRET_HASH, parsed)
    if parsed is None or stored is None:
        await asyncio.to_thread(auth.burn_verification, secret)
        raise auth.InvalidCredentials(BAD_CREDENTIALS)
    if not await asyncio.to_thread(auth.verify_secret, secret, stored):
        raise auth.InvalidCredentials(BAD_CREDENTIALS)
    try:
        async with connection(db) as conn:
            return await issue_tokens(conn, parsed, now, settings, request_id=request_id)
    except NotFound:  # deleted or deactivated since the check
        raise auth.InvalidCredentials(BAD_CREDENTIALS) from None


SELECT_GRANT = """
SELECT t.agent_id, t.scopes AS token_scopes, a.scopes AS agent_scopes
FROM agent_tokens t JOIN agents a ON a.id = t.agent_id
WHERE t.token_hash = $1 AND t.kind = 'access' AND t.revoked_at IS NULL AND t.expires_at > $2
  AND a.is_active
"""


# SELECT_GRANT as the first part of a route's own statement (``WITH grant_ AS (...)``, token
# digest $1, instant $2): the token check and the route's read in one round trip. The
# statement selects ``GRANT_COLUMNS`` from ``grant_`` and reads ``grant_from`` back.
GRANT_CTE = f"grant_ AS ({SELECT_GRANT})"
GRANT_KEYS = ("grant_agent_id", "grant_token_scopes", "grant_agent_scopes")
GRANT_COLUMNS = ", ".join(f"grant_.{key.removeprefix('grant_')} AS {key}" for key in GRANT_KEYS)


def grant_admits(required: str, admin: str) -> str:
    """SQL, for a statement reading ``grant_`` (``GRANT_CTE``): the grant's effective scopes
    (the token's and its agent's both, as ``authenticate`` intersects them) hold every scope
    of the ``text[]`` parameter ``required``, or the ``admin`` scope, which implies them all
    (the API's ``Principal.has``)."""
    return (
        f"(({admin} = ANY (grant_.token_scopes) AND {admin} = ANY (grant_.agent_scopes))"
        f" OR ({required}::text[] <@ grant_.token_scopes"
        f" AND {required}::text[] <@ grant_.agent_scopes))"
    )


def _grant(agent_id: UUID, token_scopes: list[str], agent_scopes: list[str]) -> Grant:
    # Effective scopes are the token's intersected with the agent's current ones, so
    # removing a scope from an agent takes effect on its live tokens immediately.
    return Grant(agent_id=agent_id, scopes=frozenset(token_scopes) & frozenset(agent_scopes))


def grant_from(row: asyncpg.Record | None) -> Grant | None:
    """The grant in a row of a statement that selected ``GRANT_COLUMNS`` (None: no row, or a
    row whose grant columns are null: the token is unknown, expired, revoked or its agent
    inactive)."""
    if row is None or row["grant_agent_id"] is None:
        return None
    return _grant(row["grant_agent_id"], row["grant_token_scopes"], row["grant_agent_scopes"])


def split_granted(
    row: asyncpg.Record | None, present: str = "id"
) -> tuple[Grant | None, dict[str, Any] | None]:
    """A one-row statement's grant and the rest of its row: the row without the grant's
    columns, or None when its ``present`` column is null (the statement's ``LEFT JOIN`` found
    nothing, or wrote nothing, for that grant)."""
    grant = grant_from(row)
    if row is None or row[present] is None:
        return grant, None
    rest = dict(row)
    for key in GRANT_KEYS:
        del rest[key]
    return grant, rest


async def authenticate(conn: Connection | asyncpg.Pool, token: str, now: datetime) -> Grant | None:
    """The grant of a live access token, or None (unknown, expired, revoked, agent inactive)."""
    if auth.token_kind(token) != "access":
        return None
    row = await conn.fetchrow(SELECT_GRANT, auth.token_digest(token), now)
    if row is None:
        return None
    return _grant(row["agent_id"], row["token_scopes"], row["agent_scopes"])


SELECT_TOKEN_FOR_UPDATE = """
SELECT agent_id, kind, family, expires_at, revoked_at
FROM agent_tokens WHERE token_hash = $1 FOR UPDATE
"""
REVOKE_ONE = "UPDATE agent_tokens SET revoked_at = $2 WHERE token_hash = $1 AND revoked_at IS NULL"
REVOKE_FAMILY = """
UPDATE agent_tokens SET revoked_at = $2 WHERE family = $1 AND revoked_at IS NULL
"""


async def refresh_tokens(
    conn: Connection,
    refresh_token: str,
    now: datetime,
    settings: Settings,
    *,
    request_id: str | None = None,
) -> TokenPair:
    """Rotate a refresh token: revoke it and issue a new pair in the same family.

    Presenting a refresh token that was already revoked means it leaked (or a client raced
    itself): the whole family is revoked and InvalidToken raised.
    """
    if auth.token_kind(refresh_token) != "refresh":
        raise auth.InvalidToken(BAD_TOKEN)
    digest = auth.token_digest(refresh_token)
    message = BAD_TOKEN
    async with conn.transaction():
        row = await conn.fetchrow(SELECT_TOKEN_FOR_UPDATE, digest)
        if row is None or row["kind"] != "refresh" or row["expires_at"] <= now:
            raise auth.InvalidToken(BAD_TOKEN)
        if row["revoked_at"] is None:
            await conn.execute(REVOKE_ONE, digest, now)
            try:
                return await issue_tokens(
                    conn,
                    row["agent_id"],
                    now,
                    settings,
                    family=row["family"],
                    request_id=request_id,
                )
            except NotFound:
                pass  # agent deactivated or deleted: the old refresh token stays revoked
        else:
            revoked = await conn.execute(REVOKE_FAMILY, row["family"], now)
            await audit.record(
                conn,
                actor_id=row["agent_id"],
                action="agent.token_reuse_detected",
                subject_type=SUBJECT,
                subject_id=row["agent_id"],
                now=now,
                details={"family": str(row["family"]), "tokens_revoked": _count(revoked)},
                request_id=request_id,
            )
            message = "refresh token reuse detected; the session is revoked"
    # Raised after the transaction so the revocations above commit.
    raise auth.InvalidToken(message)


SELECT_TOKEN_OWNER = "SELECT agent_id, family FROM agent_tokens WHERE token_hash = $1"


async def revoke_token(
    conn: Connection,
    token: str,
    now: datetime,
    *,
    actor_id: UUID,
    actor_is_admin: bool = False,
    request_id: str | None = None,
) -> bool:
    """Revoke a token and its family (the login it came from); True if anything was revoked.

    Only the token's own agent or an admin may revoke it; otherwise, as for an unknown token,
    nothing happens (RFC 7009: the caller learns nothing about other agents' tokens).
    """
    if auth.token_kind(token) is None:
        return False
    async with conn.transaction():
        row = await conn.fetchrow(SELECT_TOKEN_OWNER, auth.token_digest(token))
        if row is None or (row["agent_id"] != actor_id and not actor_is_admin):
            return False
        revoked = _count(await conn.execute(REVOKE_FAMILY, row["family"], now))
        if revoked:
            await audit.record(
                conn,
                actor_id=actor_id,
                action="agent.token_revoked",
                subject_type=SUBJECT,
                subject_id=row["agent_id"],
                now=now,
                details={"family": str(row["family"]), "tokens_revoked": revoked},
                request_id=request_id,
                owner_id=row["agent_id"],  # the agent sees what an admin did to it
            )
    return revoked > 0
