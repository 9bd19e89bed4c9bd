"""What a pipeline may use: every tool with its input and output JSON Schemas, and every
expression function of ``${...}`` with its signature and an example."""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from ordinaut.api.deps import Principal, require
from ordinaut.api.strict import JSONRoute
from ordinaut.api.tooling import Registry
from ordinaut.pipeline import catalogue

router = APIRouter(tags=["tools"], route_class=JSONRoute)
Reader = Annotated[Principal, Depends(require("tasks:read"))]


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
async def list_tools(who: Reader, registry: Registry) -> dict[str, Any]:
    """Every pipeline tool with its input and output JSON Schemas."""
    items = registry.describe()
    return {"items": items, "total": len(items)}


class FunctionInfo(BaseModel):
    name: str = Field(description="What an expression calls (`format_time`).")
    signature: str = Field(
        description="`name(param: type, ...more: type) -> type` with JMESPath's type names: "
        "`any`, `array-string` (a list of strings), `expref` (an `&expression`); `...` marks "
        "one or more values."
    )
    description: str = Field(description="What the function returns, and when it fails.")
    example: str = Field(description="An expression as written inside `${...}`.")
    result: Any = Field(description="What `example` evaluates to.")


class Functions(BaseModel):
    functions: list[FunctionInfo] = Field(
        description="Every function an expression may call (JMESPath's and Ordinaut's), "
        "sorted by name."
    )


@router.get("/pipeline/functions", response_model=Functions, tags=["pipeline"])
async def list_functions(who: Reader) -> dict[str, Any]:
    """Every expression function of `${...}` with its signature, what it does and an example
    (docs/pipeline.md has the whole language)."""
    return {"functions": [dataclasses.asdict(doc) for doc in catalogue()]}
