"""What a pipeline may use: the tools with their JSON Schemas, and the expression functions of
``${...}`` with their signatures."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


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
