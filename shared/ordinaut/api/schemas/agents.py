"""Agents and tokens: an agent as created, changed and read, the caller (``/agents/me``), new
credentials, and the token exchange's requests and answer."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from ordinaut import auth
from ordinaut.api.schemas.common import Strict

Scope = Literal["tasks:read", "tasks:write", "runs:read", "events:publish", "admin"]
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Scopes = Annotated[list[Scope], Field(min_length=1, max_length=len(auth.SCOPES))]


class AgentCreate(Strict):
    """A new agent."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"name": "assistant", "scopes": ["tasks:read", "tasks:write", "runs:read"]}
            ]
        },
    )
    name: Name = Field(description="A name for people (1-200 characters).")
    scopes: Scopes = Field(
        description="What it may do: `tasks:read`, `tasks:write`, `runs:read`, "
        "`events:publish`, `admin` (everything)."
    )


class AgentUpdate(Strict):
    """Fields to change; omitted fields keep their value."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"scopes": ["tasks:read", "runs:read"]}]},
    )

    name: Name | None = Field(default=None, description="A new name.")
    scopes: Scopes | None = Field(default=None, description="The new set of scopes.")
    is_active: bool | None = Field(
        default=None, description="false deactivates the agent and revokes its tokens."
    )


class AgentOut(BaseModel):
    id: UUID = Field(description="The agent's id (its `agent_id` for the token exchange).")
    name: str = Field(description="Its name.")
    scopes: list[str] = Field(description="What it may do.")
    is_active: bool = Field(description="False: it cannot obtain or use tokens.")
    created_at: datetime = Field(description="When it was created (UTC).")
    updated_at: datetime = Field(description="When it last changed (UTC).")


class AgentCreated(AgentOut):
    agent_secret: str = Field(description="Shown once; store it now. Only its hash is kept.")


class Me(BaseModel):
    """The caller, as its token presents it."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "3f2b6f0e-8a51-4c3e-9d0a-6c1f2e4b5a79",
                    "name": "assistant",
                    "scopes": ["runs:read", "tasks:read", "tasks:write"],
                    "is_admin": False,
                }
            ]
        }
    )
    id: UUID = Field(description="The agent's id.")
    name: str = Field(description="Its name.")
    scopes: list[str] = Field(
        description="What this token may do, sorted (a token may carry fewer scopes than its "
        "agent holds)."
    )
    is_admin: bool = Field(description="True: the token carries `admin` (every scope).")


class Credentials(BaseModel):
    agent_id: UUID = Field(description="The agent.")
    agent_secret: str = Field(description="The new secret, shown once. Old tokens are revoked.")


class TokenRequest(Strict):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "agent_id": "3f2b6f0e-8a51-4c3e-9d0a-6c1f2e4b5a79",
                    "agent_secret": "the secret shown when the agent was created",
                }
            ]
        },
    )
    agent_id: Annotated[str, Field(max_length=64, description="The agent's id.")]
    agent_secret: Annotated[
        str, Field(max_length=auth.MAX_SECRET_LENGTH, description="Its secret.")
    ]


class RefreshRequest(Strict):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"refresh_token": "ord_rt_..."}]}
    )
    refresh_token: Annotated[
        str, Field(max_length=auth.MAX_TOKEN_LENGTH, description="The refresh token to rotate.")
    ]


class RevokeRequest(Strict):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"token": "ord_at_..."}]}
    )
    token: Annotated[
        str,
        Field(max_length=auth.MAX_TOKEN_LENGTH, description="An access or a refresh token."),
    ]


class TokenOut(BaseModel):
    access_token: str = Field(description="Send as `Authorization: Bearer <access_token>`.")
    refresh_token: str = Field(description="Exchange at `/agents/auth/refresh` for a new pair.")
    token_type: Literal["bearer"] = Field(default="bearer", description="Always `bearer`.")
    expires_in: int = Field(description="Seconds the access token is valid.")
    scope: str = Field(description="The granted scopes, space-separated.")
