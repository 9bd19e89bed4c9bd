"""A secret's HTTP bodies: its value in (write-only) and its name and dates out."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from ordinaut.secrets import MAX_VALUE_BYTES


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
