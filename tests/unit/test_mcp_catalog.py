"""ordinaut.mcp.tools without a server: input schemas from an OpenAPI document, and a tool
call's arguments back into its REST request."""

from __future__ import annotations

from typing import Any

import pytest

from ordinaut.mcp.tools import (
    BY_NAME,
    READ,
    ArgumentError,
    Catalog,
    SchemaError,
    ToolSpec,
    input_schema,
    request_of,
)

TASK_ID = {"name": "task_id", "in": "path", "required": True, "schema": {"type": "string"}}
DOC: dict[str, Any] = {
    "paths": {
        "/tasks/{task_id}": {
            "patch": {
                "parameters": [
                    TASK_ID,
                    {"name": "X-Trace", "in": "header", "schema": {"type": "string"}},
                ],
                "requestBody": {
                    "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/Patch"}}
                    }
                },
            }
        },
        "/runs": {
            "get": {
                "parameters": [
                    {
                        "name": "status",
                        "in": "query",
                        "schema": {"type": "string"},
                        "description": "Only runs in this state.",
                    },
                    {"name": "success", "in": "query", "schema": {"type": "boolean"}},
                    {"name": "limit", "in": "query", "schema": {"type": "integer"}},
                ]
            }
        },
    },
    "components": {
        "schemas": {
            "Patch": {
                "type": "object",
                "properties": {
                    "title": {"type": "string"},
                    "payload": {"$ref": "#/components/schemas/Payload"},
                },
                "additionalProperties": False,
            },
            "Payload": {
                "type": "object",
                "properties": {"steps": {"items": {"$ref": "#/components/schemas/Step"}}},
            },
            "Step": {"type": "object", "properties": {"uses": {"type": "string"}}},
            "Unused": {"type": "object", "properties": {}},
        }
    },
}
PATCH = ToolSpec("patch", "PATCH", "/tasks/{task_id}", "Change it. Example: ...", READ)
DEAD = ToolSpec("dead", "GET", "/runs", "Dead ones.", READ, fixed={"status": "dead_letter"})


def test_parameters_and_body_fields_become_one_schema_with_the_components_it_needs() -> None:
    schema, route = input_schema(DOC, PATCH)
    assert schema == {
        "type": "object",
        "properties": {
            "task_id": {"type": "string"},
            "title": {"type": "string"},
            "payload": {"$ref": "#/$defs/Payload"},
        },
        "additionalProperties": False,
        "required": ["task_id"],
        "$defs": {  # transitively, and nothing else
            "Payload": {
                "type": "object",
                "properties": {"steps": {"items": {"$ref": "#/$defs/Step"}}},
            },
            "Step": {"type": "object", "properties": {"uses": {"type": "string"}}},
        },
    }
    assert (route.path_params, route.query_params, route.body) == (("task_id",), (), True)
    assert DOC["components"]["schemas"]["Payload"]["properties"]["steps"]["items"] == {
        "$ref": "#/components/schemas/Step"  # the document itself is left alone
    }


def test_a_fixed_argument_is_not_offered_and_always_sent() -> None:
    catalog = Catalog.from_openapi(DOC)
    schema, _ = input_schema(DOC, DEAD)
    assert set(schema["properties"]) == {"success", "limit"}
    tool = catalog.tools["list_dead_letters"]
    request = request_of(tool, {"success": False, "limit": 5})
    assert (request.method, request.path, request.body) == ("GET", "/runs", None)
    assert request.query == {"status": "dead_letter", "success": "false", "limit": 5}
    # a repeatable parameter goes out once per value (httpx repeats a list)
    listed = request_of(catalog.tools["list_runs"], {"status": ["a", "b"], "success": None})
    assert listed.query == {"status": ["a", "b"]}  # None: not sent, the API's default holds
    # the model cannot override it: it is not an argument
    with pytest.raises(ArgumentError, match="unknown argument status"):
        request_of(tool, {"status": "succeeded"})


def test_tools_whose_route_the_api_lacks_are_left_out() -> None:
    catalog = Catalog.from_openapi(DOC)
    assert set(catalog.tools) == {"list_runs", "list_dead_letters", "update_task"}
    assert "list_expression_functions" in BY_NAME  # served once GET /pipeline/functions exists


def test_an_operation_a_tool_cannot_take_is_an_error() -> None:
    text = {"content": {"application/json": {"schema": {"type": "string"}}}}
    broken = {"paths": {"/events": {"post": {"requestBody": text}}}}
    with pytest.raises(SchemaError, match="POST /events: the body is not an object schema"):
        Catalog.from_openapi(broken)
    dangling = {
        "paths": {
            "/runs": {
                "get": {
                    "parameters": [
                        {**TASK_ID, "in": "query", "schema": {"$ref": "#/components/schemas/Gone"}}
                    ]
                }
            }
        }
    }
    with pytest.raises(SchemaError, match="unknown component 'Gone'"):
        Catalog.from_openapi(dangling)
    gone = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Gone"}}}}
    with pytest.raises(SchemaError, match="POST /events: unknown component 'Gone'"):
        Catalog.from_openapi({"paths": {"/events": {"post": {"requestBody": gone}}}})
    clash = {
        "paths": {
            "/x/{title}": {
                "post": {
                    "parameters": [{**TASK_ID, "name": "title"}],
                    "requestBody": DOC["paths"]["/tasks/{task_id}"]["patch"]["requestBody"],
                }
            }
        },
        "components": DOC["components"],
    }
    spec = ToolSpec("x", "POST", "/x/{title}", "x", READ)
    with pytest.raises(SchemaError, match="'title' is a parameter and a field"):
        input_schema(clash, spec)


def test_arguments_go_back_to_path_query_and_body_as_given() -> None:
    tool = Catalog.from_openapi(DOC).tools["update_task"]
    request = request_of(tool, {"task_id": "a b/c", "title": "new"})
    assert request.path == "/tasks/a%20b%2Fc"  # one segment, whatever the id holds
    assert request.body == {"title": "new"}  # only what was given: PATCH leaves the rest
    assert request.query == {}
    assert request_of(tool, {"task_id": "t"}).body == {}
    with pytest.raises(ArgumentError, match="missing argument task_id"):
        request_of(tool, {"title": "new"})
    with pytest.raises(ArgumentError, match="task_id must be an id"):
        request_of(tool, {"task_id": ".."})
    with pytest.raises(ArgumentError, match="unknown arguments colour, size; update_task takes"):
        request_of(tool, {"task_id": "t", "colour": "red", "size": 1})


def test_every_tool_is_described_for_a_model() -> None:
    for spec in BY_NAME.values():
        assert spec.method in ("GET", "POST", "PATCH", "DELETE"), spec.name
        assert "Example" in spec.description or "e.g." in spec.description, spec.name
        assert spec.annotations.read_only_hint == (spec.method == "GET") or spec.name in (
            "preview_schedule",
            "validate_task",
        ), spec.name
