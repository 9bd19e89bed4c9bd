"""``ordinaut mcp``: serve Ordinaut's tools to an assistant over the Model Context Protocol
(the server itself is ``ordinaut.mcp.stdio``, the hosted ``/mcp`` endpoint's tools over
stdio or a local port; it calls the REST API)."""

from __future__ import annotations

import argparse
import os

from ordinaut.cli.common import CommandError, SubParsers, leaf
from ordinaut.cli.rest import connection_flags


def cmd_mcp(args: argparse.Namespace) -> int:
    try:
        from ordinaut.mcp import stdio
    except ModuleNotFoundError as exc:  # a plain (client) install has no MCP SDK
        if exc.name != "mcp" and not (exc.name or "").startswith("mcp."):
            raise
        raise CommandError("ordinaut mcp needs the MCP SDK: pip install 'ordinaut[mcp]'") from None
    from ordinaut.client import credentials as store

    conn = store.resolve(os.environ, url=args.url, token=args.token)
    return stdio.main(conn, transport=args.transport, host=args.host, port=args.port)


def register(sub: SubParsers[argparse.ArgumentParser]) -> None:
    p = leaf(
        sub,
        "mcp",
        "run an MCP server that gives an assistant Ordinaut's tools",
        "  ordinaut mcp                                   stdio, for a desktop assistant\n"
        "  ordinaut mcp --transport http --port 8765      streamable HTTP on 127.0.0.1",
        cmd_mcp,
    )
    p.description = (
        "Serve Ordinaut's tools (create_task, update_task, run_task_now, get_run, ...) over\n"
        "the Model Context Protocol: the tools of the API's own /mcp endpoint. The server\n"
        "calls the REST API at ORDINAUT_URL with ORDINAUT_TOKEN, or with the credential\n"
        "saved by `ordinaut login`."
    )
    p.add_argument(
        "--transport",
        choices=("stdio", "http"),
        default="stdio",
        help="stdio (the assistant starts the server) or streamable HTTP (default stdio)",
    )
    p.add_argument("--host", default="127.0.0.1", help="HTTP interface (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8765, help="HTTP port (default 8765)")
    connection_flags(p, json_flag=False)
