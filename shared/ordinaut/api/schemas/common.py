"""What every resource's schemas share: ``Strict`` (a request body refuses unknown fields),
``Page``, the one list envelope of the paged list routes (``KeysetPage`` adds the cursor), and
the error envelope every error response carries (``api/contract.py`` documents it per route)."""

from __future__ import annotations

from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    """The list envelope every paged list route uses."""

    items: list[T] = Field(description="This page's items.")
    total: int = Field(description="Items matching, over every page.")
    limit: int = Field(description="The page size asked for.")
    offset: int = Field(description="Items skipped before this page.")
    has_more: bool = Field(description="True when a later page has items.")


class KeysetPage(Page[T], Generic[T]):
    """The list envelope of the lists that also page by cursor (``GET /tasks``, ``GET /runs``)."""

    total: int | None = Field(  # type: ignore[assignment]
        description="Items matching, over every page; null when not counted (`total=false`, "
        "or a page read with `cursor`)."
    )
    next_cursor: str | None = Field(
        description="Send it back as `cursor` for the next page (keyset paging); null on the "
        "last page."
    )


class ErrorDetail(BaseModel):
    code: str = Field(
        description="Stable, machine-readable error code, e.g. `validation_error`, `not_found`.",
        examples=["validation_error"],
    )
    message: str = Field(
        description="What went wrong, for a human.", examples=["invalid input at body.title"]
    )
    details: Any = Field(
        default=None,
        description="Structured details: for validation errors a list of "
        "`{field, message, type}`; otherwise an object naming what was involved, or null.",
    )


class ErrorEnvelope(BaseModel):
    """The body of every error response."""

    model_config = ConfigDict(
        title="Error",
        json_schema_extra={
            "examples": [
                {
                    "error": {
                        "code": "validation_error",
                        "message": "invalid input at body.title",
                        "details": [
                            {
                                "field": "body.title",
                                "message": "String should have at least 1 character",
                                "type": "string_too_short",
                            }
                        ],
                    },
                    "request_id": "5f0c1f3c2b7a4d0e9b6f2a1c8d7e6f50",
                }
            ]
        },
    )
    error: ErrorDetail = Field(description="What went wrong.")
    request_id: str = Field(
        description="The request's id, also sent as `X-Request-ID`; quote it when reporting."
    )
