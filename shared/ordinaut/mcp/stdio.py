"""``ordinaut mcp``: the MCP tools for an assistant that starts its servers itself (stdio), or
on a local streamable HTTP port.

The tools are the hosted ``/mcp`` endpoint's (``ordinaut.mcp.server``), sent over HTTP to the
API at the connection's URL with its one credential; their input schemas are read from that
API's ``/openapi.json``, so they match the server in use. The HTTP transport serves that one
credential to whoever reaches the port: it binds 127.0.0.1 unless told otherwise, and the
hosted ``/mcp`` (each caller with its own token) is the way to share Ordinaut.
"""

from __future__ import annotations

import contextlib

import anyio

from ordinaut.client import AsyncOrdinaut
from ordinaut.client.credentials import Connection
from ordinaut.mcp.server import build_server, openapi_catalog


async def serve(conn: Connection, *, transport: str, host: str, port: int) -> None:
    """Run the server until its transport closes (stdin ends) or it is interrupted."""
    async with AsyncOrdinaut(conn.url, **conn.client_kwargs()) as client:
        server = build_server(client, openapi_catalog(client))
        if transport == "stdio":
            from mcp.server.stdio import stdio_server

            async with stdio_server() as (read, write):
                await server.run(read, write, server.create_initialization_options())
        else:
            import uvicorn

            app = server.streamable_http_app(stateless_http=True, json_response=True, host=host)
            config = uvicorn.Config(app, host=host, port=port, log_level="warning")
            await uvicorn.Server(config).serve()


def main(
    conn: Connection, *, transport: str = "stdio", host: str = "127.0.0.1", port: int = 8765
) -> int:
    """Entry point of ``ordinaut mcp``; returns the exit code."""
    with contextlib.suppress(KeyboardInterrupt):
        anyio.run(lambda: serve(conn, transport=transport, host=host, port=port))
    return 0
