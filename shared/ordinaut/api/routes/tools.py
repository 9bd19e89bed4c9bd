"""What a pipeline may use: every tool with its input and output JSON Schemas, and every
expression function of ``${...}`` with its signature and an example."""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any

from fastapi import APIRouter, Depends

from ordinaut.api.deps import Principal, require
from ordinaut.api.schemas import Functions, Tools
from ordinaut.api.strict import JSONRoute
from ordinaut.api.tooling import Registry
from ordinaut.pipeline import catalogue

router = APIRouter(tags=["tools"], route_class=JSONRoute)
Reader = Annotated[Principal, Depends(require("tasks:read"))]


@router.get("/tools", response_model=Tools)
async def list_tools(who: Reader, registry: Registry) -> dict[str, Any]:
    """Every pipeline tool with its input and output JSON Schemas."""
    items = registry.describe()
    return {"items": items, "total": len(items)}


@router.get("/pipeline/functions", response_model=Functions, tags=["pipeline"])
async def list_functions(who: Reader) -> dict[str, Any]:
    """Every expression function of `${...}` with its signature, what it does and an example
    (docs/pipeline.md has the whole language)."""
    return {"functions": [dataclasses.asdict(doc) for doc in catalogue()]}
