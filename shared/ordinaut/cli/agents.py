"""``ordinaut agents create``: make an agent (an API client) directly in the database, e.g. the
first admin, and print its one-time secret."""

from __future__ import annotations

import argparse
import asyncio
import json
from typing import Any

from ordinaut.auth import ADMIN, SCOPES
from ordinaut.cli.common import (
    EXIT_OK,
    EXIT_USAGE,
    CommandError,
    SubParsers,
    configure_logging,
    database_errors,
    missing_subcommand,
    require_database,
    settings_from,
    subparser,
)
from ordinaut.config import Settings

# A new agent without --scopes can do everything but administer other agents.
DEFAULT_SCOPES = tuple(s for s in SCOPES if s != ADMIN)


def parse_scopes(raw: str | None, *, admin: bool) -> list[str]:
    """Scopes for a new agent: ``--admin`` means every scope; unknown names exit 2."""
    if admin:
        return list(SCOPES)
    if raw is None:
        return list(DEFAULT_SCOPES)
    scopes = [s.strip() for s in raw.split(",") if s.strip()]
    if not scopes:
        raise CommandError("--scopes needs at least one scope", EXIT_USAGE)
    unknown = [s for s in scopes if s not in SCOPES]
    if unknown:
        raise CommandError(
            f"unknown scope {', '.join(unknown)}; known: {', '.join(SCOPES)}", EXIT_USAGE
        )
    return list(dict.fromkeys(scopes))


async def create_agent(settings: Settings, name: str, scopes: list[str]) -> dict[str, Any]:
    from ordinaut.clock import DatabaseClock
    from ordinaut.store import agents, db

    conn = await db.connect(settings)
    try:
        clock = DatabaseClock()  # one clock: the database's (docs/guarantees.md, "One clock")
        await db.sync_clock(conn, clock)
        agent, secret = await agents.create_agent(conn, name=name, scopes=scopes, now=clock.now())
    finally:
        await conn.close()
    return {
        "agent_id": str(agent.id),
        "name": agent.name,
        "scopes": list(agent.scopes),
        "agent_secret": secret,
    }


def cmd_agents_create(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    scopes = parse_scopes(args.scopes, admin=args.admin)
    if not 1 <= len(args.name) <= 200:
        raise CommandError("agent name must be 1 to 200 characters", EXIT_USAGE)
    require_database(settings)
    configure_logging(settings)
    with database_errors(settings):
        created = asyncio.run(create_agent(settings, args.name, scopes))
    if args.json:
        print(json.dumps(created))
        return EXIT_OK
    url = settings.public_url or f"http://127.0.0.1:{settings.api_port}"
    body = json.dumps({"agent_id": created["agent_id"], "agent_secret": created["agent_secret"]})
    print(
        f"created agent {created['name']}\n"
        f"  agent_id      {created['agent_id']}\n"
        f"  agent_secret  {created['agent_secret']}   (shown once: store it now)\n"
        f"  scopes        {','.join(created['scopes'])}\n"
        "exchange it for a token:\n"
        f"  curl -s -X POST {url}/agents/auth/token -H 'Content-Type: application/json' "
        f"-d '{body}'"
    )
    return EXIT_OK


def register(sub: SubParsers[argparse.ArgumentParser]) -> None:
    agents = subparser(
        sub,
        "agents",
        "manage agents (API clients) from the command line",
        "Manage agents directly in the database; use this to create the first admin.",
        "  ordinaut agents create ops --admin",
    )
    agents_sub = agents.add_subparsers(dest="agents_command", metavar="COMMAND", title="commands")
    agents.set_defaults(func=missing_subcommand(agents))
    p = subparser(
        agents_sub,
        "create",
        "create an agent and print its one-time secret",
        "Create an agent and print its id and secret (the secret is shown only once).\n"
        "Exchange them for a token with POST /agents/auth/token. Default scopes:\n"
        f"{','.join(DEFAULT_SCOPES)}; --admin grants every scope, including admin.",
        "  ordinaut agents create ops --admin\n"
        "  ordinaut agents create reporter --scopes tasks:read,runs:read --json",
    )
    p.add_argument("name", help="a human-readable name (1-200 characters)")
    p.add_argument("--admin", action="store_true", help="grant every scope, including admin")
    p.add_argument(
        "--scopes", metavar="A,B", help="comma-separated scopes, e.g. tasks:read,runs:read"
    )
    p.add_argument("--json", action="store_true", help="print the result as one JSON object")
    p.set_defaults(func=cmd_agents_create)
