"""Tools: every pipeline tool with its input and output JSON Schemas."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request

from ordinaut.api.deps import Principal, require
from ordinaut.api.strict import JSONRoute
from ordinaut.api.tooling import tool_registry

router = APIRouter(tags=["tools"], route_class=JSONRoute)


@router.get("/tools")
async def list_tools(
    request: Request, who: Principal = Depends(require("tasks:read"))
) -> dict[str, Any]:
    items = tool_registry(request).describe()
    return {"items": items, "total": len(items)}
