"""The OpenAPI contract: which error statuses each route documents, each with the error envelope.

Every error leaves the API as ``{"error": {"code", "message", "details"}, "request_id"}``
(``api/errors.py``; its schema: ``api/schemas/common.py``); the document says so for every
status a route can answer, so generated clients know them. Most of those statuses follow from
what a route is made of, so ``document`` derives them from each route before its router is
included in the app:

* 401 for a route that needs a bearer token, 403 when it needs a scope;
* 429 for every route but the health checks (the rate limit is per agent, else per address);
* 400 (malformed JSON), 413 (body too large) and 422 for a route with a JSON body;
* 422 for a route with query, path or header parameters, and for every ``JSONRoute`` (any
  query string or header may carry text that cannot be stored: ``api/strict.py``);
* 404 for a route with a path parameter (the resource named in the path);
* 503 for a route that reads the database or Redis.

What a route adds on top (409 for a state that forbids the change, 404 for a resource not
named in the path) it declares with ``responses=errors(409)``.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter
from fastapi.routing import APIRoute
from fastapi.utils import create_model_field

from ordinaut.api.schemas import ErrorEnvelope
from ordinaut.api.strict import JSONRoute

if TYPE_CHECKING:
    from fastapi._compat import ModelField

DESCRIPTIONS = {
    400: "The body is not valid JSON (`invalid_json`, with the position).",
    401: "No bearer token, or one that is expired or revoked (`unauthorized`).",
    403: "The agent lacks the scope this route needs (`forbidden`).",
    404: "No such resource, or one the agent does not own (`not_found`).",
    409: "The resource's current state forbids this change (`conflict`, `invalid_transition`).",
    413: "The body is larger than `max_body_bytes` (`payload_too_large`).",
    422: "The input was understood but is not acceptable; `details` names each field "
    "(`validation_error`, `invalid_schedule`, `invalid_pipeline`, `limit_exceeded`).",
    429: "A budget is spent (`rate_limited`; `details.limit` names it): requests per agent or "
    "address, runs queued per agent and minute, live streams per agent; see `Retry-After`.",
    503: "PostgreSQL or Redis cannot be reached right now (`unavailable`); retry later.",
}
RETRY_AFTER = {
    "Retry-After": {
        "description": "Seconds to wait before trying again.",
        "schema": {"type": "integer", "minimum": 1},
    }
}
# Routes that answer without the database, Redis or a token.
NO_BACKEND = frozenset({"/health/live"})
NOT_RATE_LIMITED = frozenset({"/health", "/health/live", "/health/ready"})


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for FastAPI: each status answered with the error envelope."""
    out: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        entry: dict[str, Any] = {"model": ErrorEnvelope, "description": DESCRIPTIONS[status]}
        if status in (429, 503):
            entry["headers"] = RETRY_AFTER
        out[status] = entry
    return out


def _needs_auth(route: APIRoute) -> tuple[bool, bool]:
    """(needs a token, needs a scope) from the route's ``require(...)`` dependency."""
    token = scope = False
    for dep in route.dependant.dependencies:
        name = getattr(dep.call, "__name__", "")
        if name.startswith("require_"):
            token = True
            scope = scope or name != "require_auth"
    return token, scope


def derived_statuses(route: APIRoute) -> list[int]:
    """The error statuses that follow from what the route is made of (see the module doc)."""
    dependant = route.dependant
    token, scope = _needs_auth(route)
    flat = _flat_params(dependant)
    statuses: set[int] = set()
    if token:
        statuses.add(401)
        if scope:
            statuses.add(403)
    if route.path not in NOT_RATE_LIMITED:
        statuses.add(429)
    if route.body_field is not None:
        statuses |= {400, 413, 422}
    if flat["query"] or flat["path"] or flat["header"] or isinstance(route, JSONRoute):
        statuses.add(422)
    if flat["path"]:
        statuses.add(404)
    if route.path not in NO_BACKEND:
        statuses.add(503)
    return sorted(statuses)


def _flat_params(dependant: Any) -> dict[str, int]:
    counts = {"query": 0, "path": 0, "header": 0}
    stack = [dependant]
    while stack:
        dep = stack.pop()
        counts["query"] += len(dep.query_params)
        counts["path"] += len(dep.path_params)
        # the bearer credentials are a security scheme, not a documented header parameter
        counts["header"] += len(dep.header_params)
        stack.extend(dep.dependencies)
    return counts


def document(router: APIRouter) -> None:
    """Add the derived error responses to every documented route of ``router`` (a route's
    own ``responses`` entries win). Call it before the router is included in an app: the
    app builds its routes from these. Doing it twice changes nothing."""
    for route in router.routes:
        if not isinstance(route, APIRoute) or not route.include_in_schema:
            continue
        derived = errors(*derived_statuses(route))
        route.responses = {**derived, **route.responses}
        # FastAPI builds a response's schema field when the route is created; these entries
        # arrive later, so their fields are built here. Only the OpenAPI document reads them,
        # and every derived one is the same error envelope: one field per status serves every
        # route (a field per route and status was ~350 schema builds at each cold start).
        for status, response in route.responses.items():
            model = response.get("model")
            if model is not None and status not in route.response_fields:
                route.response_fields[status] = (
                    _envelope_field(status)
                    if model is ErrorEnvelope
                    else create_model_field(
                        name=f"Response_{status}_{route.unique_id}",
                        type_=model,
                        mode="serialization",
                    )
                )


@functools.cache
def _envelope_field(status: int) -> ModelField:
    return create_model_field(
        name=f"Response_{status}_error", type_=ErrorEnvelope, mode="serialization"
    )
