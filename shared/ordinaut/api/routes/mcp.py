"""``POST /mcp``: the MCP tools (``ordinaut.mcp``) on the API itself, over the official SDK's
Streamable HTTP transport in stateless mode.

Stateless means every POST is answered on its own (JSON, no ``Mcp-Session-Id``, no stream left
open): nothing lives between requests, so it works behind Mangum on Lambda, where the lifespan
never runs, and behind any load balancer without session affinity. Each request gets its own
SDK session manager, entered and left inside the request.

The caller authenticates with its own bearer token, checked by the same dependency as every
REST route (401 otherwise). A tool call then sends its REST request to this same app in
process (``httpx.ASGITransport``) with that token, so scopes, tenancy, validation, the audit log
and the run quota apply exactly as over REST; the inner requests carry the MCP request's id and
are not charged to the rate limit again (the ``/mcp`` request was).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Depends, FastAPI, Request, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from ordinaut.api.deps import Principal, id_of, require
from ordinaut.api.middleware import IN_PROCESS
from ordinaut.api.strict import JSONRoute

if TYPE_CHECKING:
    from ordinaut.mcp.tools import Catalog

# The MCP SDK, httpx and the client load on the first /mcp request, not with the app: most
# requests never need them, and a Lambda's cold start pays for every import (issue 12).

router = APIRouter(tags=["mcp"], route_class=JSONRoute)

# The app's own requests need no network timeout; this only bounds a pathological one.
IN_PROCESS_TIMEOUT_S = 60.0


def catalog_of(app: FastAPI) -> Catalog:
    """The tools this app serves, from its own OpenAPI document (built once per app)."""
    from ordinaut.mcp.tools import Catalog

    catalog = getattr(app.state, "mcp_catalog", None)
    if not isinstance(catalog, Catalog):
        catalog = Catalog.from_openapi(app.openapi())
        app.state.mcp_catalog = catalog
    return catalog


def in_process(app: ASGIApp, request_id: str) -> ASGIApp:
    """``app`` for the requests a tool call sends to it: marked as in process (the rate
    limiter lets them through) and carrying the ``/mcp`` request's id."""

    async def call(scope: Scope, receive: Receive, send: Send) -> None:
        scope[IN_PROCESS] = True
        headers = [(k, v) for k, v in scope["headers"] if k != b"x-request-id"]
        scope["headers"] = [*headers, (b"x-request-id", request_id.encode())]
        await app(scope, receive, send)

    return call


class MCPExchange(Response):
    """Answers one MCP message: the SDK's stateless transport runs as this response."""

    def __init__(self, request: Request, token: str) -> None:
        super().__init__()
        self.app: FastAPI = request.app
        self.token = token
        self.request_id = id_of(request)
        self.base_url = str(request.base_url).rstrip("/")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        import httpx
        from mcp.server.streamable_http_manager import StreamableHTTPSessionManager

        from ordinaut.client import AsyncOrdinaut
        from ordinaut.mcp.server import build_server

        peer = scope.get("client")
        transport = httpx.ASGITransport(
            app=in_process(self.app, self.request_id),
            raise_app_exceptions=False,
            client=(str(peer[0]), int(peer[1])) if peer else ("127.0.0.1", 0),
        )
        catalog = catalog_of(self.app)

        async def tools() -> Catalog:
            return catalog

        async with AsyncOrdinaut(
            self.base_url,
            token=self.token,
            transport=transport,
            max_retries=0,  # a 429 or 503 goes straight back to the model
            timeout=IN_PROCESS_TIMEOUT_S,
        ) as client:
            manager = StreamableHTTPSessionManager(
                build_server(client, tools), json_response=True, stateless=True
            )
            async with manager.run():
                await manager.handle_request(scope, receive, send)


def _token(request: Request) -> str:
    # require() has accepted it: "Bearer <token>"
    return request.headers["authorization"].split(None, 1)[1].strip()


@router.post("/mcp", include_in_schema=False)
async def mcp_endpoint(request: Request, who: Principal = Depends(require(None))) -> Any:
    """One MCP JSON-RPC message (``initialize``, ``tools/list``, ``tools/call`` ...), answered
    as JSON. Any agent may call it; each tool needs the scopes of its REST route."""
    return MCPExchange(request, _token(request))
