"""``GET /pipeline/functions``: the evaluator's own function table, documented, behind auth."""

from __future__ import annotations

import dataclasses
from typing import Any

import httpx
from fastapi import FastAPI

from ordinaut.pipeline import catalogue


async def test_lists_every_function_from_the_evaluators_registry(
    client: httpx.AsyncClient, make_agent: Any
) -> None:
    reader = await make_agent(["tasks:read"])
    response = await client.get("/pipeline/functions", headers=reader["headers"])
    assert response.status_code == 200
    functions = response.json()["functions"]
    assert functions == [dataclasses.asdict(doc) for doc in catalogue()]
    by_name = {f["name"]: f for f in functions}
    assert by_name["format_time"] == {
        "name": "format_time",
        "signature": "format_time(time: any, zone: string, format: string) -> string",
        "description": by_name["format_time"]["description"],
        "example": "format_time('2026-03-01T08:00:00Z', 'Europe/Chisinau', '%H:%M')",
        "result": "10:00",
    }
    assert {"sort_by", "not_null", "add_duration", "if_else"} <= by_name.keys()


async def test_needs_a_token_and_the_read_scope(client: httpx.AsyncClient, make_agent: Any) -> None:
    anonymous = await client.get("/pipeline/functions")
    assert anonymous.status_code == 401
    assert anonymous.json()["error"]["code"] == "unauthorized"
    publisher = await make_agent(["events:publish"])
    denied = await client.get("/pipeline/functions", headers=publisher["headers"])
    assert denied.status_code == 403
    assert denied.json()["error"]["code"] == "forbidden"


def test_the_openapi_document_types_the_response(app: FastAPI) -> None:
    document = app.openapi()
    operation = document["paths"]["/pipeline/functions"]["get"]
    schema = operation["responses"]["200"]["content"]["application/json"]["schema"]
    assert schema == {"$ref": "#/components/schemas/Functions"}
    info = document["components"]["schemas"]["FunctionInfo"]
    assert set(info["required"]) == {"name", "signature", "description", "example", "result"}
    assert {"401", "403"} <= operation["responses"].keys()
