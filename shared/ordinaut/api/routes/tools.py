"""Tools: every pipeline tool with its input and output JSON Schemas."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from ordinaut.api.deps import Principal, require
from ordinaut.api.strict import JSONRoute
from ordinaut.api.tooling import Registry

router = APIRouter(tags=["tools"], route_class=JSONRoute)


class ToolInfo(BaseModel):
    name: str = Field(description="What a step's `uses` names (`http.request`).")
    description: str = Field(description="What the tool does.")
    input_schema: dict[str, Any] = Field(description="JSON Schema of the step's `with`.")
    output_schema: dict[str, Any] = Field(description="JSON Schema of the step's output.")
    default_timeout_s: float = Field(description="A step's timeout unless it sets `timeout_s`.")
    scopes: list[str] = Field(description="Scopes the task's owner needs to use it.")


class Tools(BaseModel):
    items: list[ToolInfo] = Field(description="Every tool, sorted by name.")
    total: int = Field(description="How many.")


@router.get("/tools", response_model=Tools)
async def list_tools(
    who: Annotated[Principal, Depends(require("tasks:read"))], registry: Registry
) -> dict[str, Any]:
    """Every pipeline tool with its input and output JSON Schemas."""
    items = registry.describe()
    return {"items": items, "total": len(items)}
