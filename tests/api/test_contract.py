"""The OpenAPI document is the contract: the real error envelope for every status a route can
answer, typed responses, a description on every operation, parameter and field, examples on
the request bodies, and links that name real operations."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from ordinaut.api.contract import ErrorEnvelope

ENVELOPES = {"#/components/schemas/ErrorEnvelope", "#/components/schemas/Unhealthy"}
WRITE = ["tasks:read", "tasks:write", "runs:read", "events:publish"]


@pytest.fixture
async def doc(client: httpx.AsyncClient) -> dict[str, Any]:
    r = await client.get("/openapi.json")
    assert r.status_code == 200
    return dict(r.json())


def _operations(doc: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method.upper(), path, op)
        for path, item in doc["paths"].items()
        for method, op in item.items()
        if method in ("get", "post", "put", "patch", "delete")
    ]


def _ref(response: dict[str, Any]) -> str | None:
    schema = response.get("content", {}).get("application/json", {}).get("schema", {})
    return schema.get("$ref")


def test_no_trace_of_fastapis_default_422(doc: dict[str, Any]) -> None:
    schemas = doc["components"]["schemas"]
    assert "HTTPValidationError" not in schemas
    assert "ValidationError" not in schemas
    assert set(schemas["ErrorEnvelope"]["required"]) == {"error", "request_id"}
    assert set(schemas["ErrorDetail"]["required"]) == {"code", "message"}


def test_every_error_status_is_documented_with_the_envelope(doc: dict[str, Any]) -> None:
    for method, path, op in _operations(doc):
        errors = {s: r for s, r in op["responses"].items() if int(s) >= 400}
        assert "422" in errors, (method, path)  # unstorable text in any query or header
        for status, response in errors.items():
            assert _ref(response) in ENVELOPES, (method, path, status)
            assert response["description"], (method, path, status)


def test_statuses_follow_from_what_each_route_is(doc: dict[str, Any]) -> None:
    for method, path, op in _operations(doc):
        statuses = set(op["responses"])
        params = {p["in"] for p in op.get("parameters", [])}
        if op.get("security"):
            assert "401" in statuses, (method, path)
        if "requestBody" in op:
            assert {"400", "413", "422"} <= statuses, (method, path)
        if params:
            assert "422" in statuses, (method, path)
        if "path" in params:
            assert "404" in statuses, (method, path)
        if not path.startswith("/health"):
            assert {"429", "503"} <= statuses, (method, path)
    paths = doc["paths"]
    for path, method in [
        ("/tasks/{task_id}/pause", "post"),
        ("/tasks/{task_id}", "patch"),
        ("/runs/{run_id}/retry", "post"),
        ("/agents/{agent_id}", "delete"),
        ("/tasks", "post"),
    ]:
        assert "409" in paths[path][method]["responses"], (method, path)
    assert "403" in paths["/tasks"]["post"]["responses"]
    assert "403" not in paths["/agents/auth/revoke"]["post"]["responses"]  # any agent may


async def test_the_documented_envelope_is_what_errors_look_like(
    client: httpx.AsyncClient, make_agent: Any
) -> None:
    reader = await make_agent(["tasks:read"])
    answers = [
        await client.get("/tasks"),  # 401
        await client.post("/tasks", json={}, headers=reader["headers"]),  # 403
        await client.get(
            "/tasks/00000000-0000-4000-8000-000000000000", headers=reader["headers"]
        ),  # 404
        await client.get("/tasks", params={"limit": 0}, headers=reader["headers"]),  # 422
        await client.get("/tools", params={"x": "\x00"}, headers=reader["headers"]),  # 422
    ]
    assert [r.status_code for r in answers] == [401, 403, 404, 422, 422]
    for r in answers:
        ErrorEnvelope.model_validate(r.json())


def test_task_and_run_responses_are_typed(doc: dict[str, Any]) -> None:
    schemas = doc["components"]["schemas"]
    for name in ("TaskOut", "RunOut", "RunSummary", "RunQueued", "EventAccepted", "FireTimes"):
        schema = schemas[name]
        assert schema["type"] == "object"
        assert schema.get("additionalProperties") is not True
        assert schema["properties"], name
        assert schema["required"], name
    paths = doc["paths"]
    for path, method, status, ref in [
        ("/tasks", "post", "201", "TaskOut"),
        ("/tasks/{task_id}", "get", "200", "TaskOut"),
        ("/tasks/{task_id}", "patch", "200", "TaskOut"),
        ("/tasks", "get", "200", "Page_TaskListItem_"),  # TaskOut + how it last went
        ("/runs", "get", "200", "Page_RunSummary_"),
        ("/runs/{run_id}", "get", "200", "RunOut"),
        ("/tasks/{task_id}/run_now", "post", "202", "RunQueued"),
        ("/events", "post", "202", "EventAccepted"),
    ]:
        response = paths[path][method]["responses"][status]
        assert _ref(response) == f"#/components/schemas/{ref}", (method, path)


def _undescribed(schema: dict[str, Any], where: str) -> list[str]:
    missing = []
    for name, prop in schema.get("properties", {}).items():
        if not prop.get("description"):
            missing.append(f"{where}.{name}")
    return missing


def test_every_operation_parameter_and_field_has_a_description(doc: dict[str, Any]) -> None:
    missing = []
    for method, path, op in _operations(doc):
        if not op.get("description"):
            missing.append(f"{method} {path}")
        for param in op.get("parameters", []):
            if not param.get("description"):
                missing.append(f"{method} {path} {param['in']}.{param['name']}")
    for name, schema in doc["components"]["schemas"].items():
        missing += _undescribed(schema, name)
    assert not missing, "\n".join(missing)


async def test_request_bodies_have_examples_that_are_accepted(
    doc: dict[str, Any], client: httpx.AsyncClient, make_agent: Any
) -> None:
    schemas = doc["components"]["schemas"]
    for method, path, op in _operations(doc):
        if "requestBody" in op:
            ref = op["requestBody"]["content"]["application/json"]["schema"]["$ref"]
            assert schemas[ref.rsplit("/", 1)[-1]].get("examples"), (method, path)
    headers = (await make_agent(WRITE))["headers"]
    created = await client.post(
        "/tasks", json=schemas["TaskCreate"]["examples"][0], headers=headers
    )
    assert created.status_code == 201, created.text
    task_id = created.json()["id"]
    patched = await client.patch(
        f"/tasks/{task_id}", json=schemas["TaskPatch"]["examples"][0], headers=headers
    )
    assert patched.status_code == 200, patched.text
    published = await client.post(
        "/events", json=schemas["EventIn"]["examples"][0], headers=headers
    )
    assert published.status_code == 202, published.text
    for name, path in (("PreviewIn", "/schedules/preview"), ("ValidateIn", "/tasks/validate")):
        r = await client.post(path, json=schemas[name]["examples"][0], headers=headers)
        assert r.status_code == 200, (name, r.text)


def test_links_name_real_operations_and_parameters(doc: dict[str, Any]) -> None:
    operations = {op["operationId"]: (path, op) for _, path, op in _operations(doc)}
    links = [
        link
        for _, _, op in _operations(doc)
        for response in op["responses"].values()
        for link in response.get("links", {}).values()
    ]
    assert len(links) >= 8
    for link in links:
        path, _ = operations[link["operationId"]]
        for name in link["parameters"]:
            assert "{" + name + "}" in path, (link, path)
