"""``ordinaut login``: check a credential against a server and save it for the REST commands."""

from __future__ import annotations

import argparse
import os
import sys

from ordinaut.cli.common import EXIT_OK, EXIT_USAGE, CommandError, SubParsers, leaf
from ordinaut.cli.output import print_json
from ordinaut.cli.rest import api_errors, connection_flags


def cmd_login(args: argparse.Namespace) -> int:
    from ordinaut.client import AuthError, Ordinaut
    from ordinaut.client import credentials as store

    environ = os.environ
    url = args.url or environ.get(store.ENV_URL)
    if not url:
        raise CommandError("--url is required (e.g. --url http://127.0.0.1:8080)", EXIT_USAGE)
    agent_id, secret, token = args.agent_id, args.secret, args.token
    if secret == "-":
        secret = sys.stdin.readline().strip()
    if token and (agent_id or secret):
        raise CommandError("give either --token or --agent-id with --secret, not both", EXIT_USAGE)
    if not token and not (agent_id and secret):
        if agent_id or secret:
            raise CommandError("--agent-id and --secret go together", EXIT_USAGE)
        if not sys.stdin.isatty():
            raise CommandError("give --token, or --agent-id and --secret", EXIT_USAGE)
        import getpass

        agent_id = input("agent id: ").strip()
        secret = getpass.getpass("agent secret: ").strip()
    with Ordinaut(url, token=token) as client, api_errors():
        if token:
            try:
                client.list_tools()  # any authenticated route proves the token
            except AuthError as exc:
                if exc.status == 401:
                    raise
            scope = "(scopes not shown for a token)"
        else:
            tokens = client.exchange_token(agent_id, secret)
            token, scope = tokens.access_token, f"scopes: {tokens.scope}"
    assert token is not None
    path = store.save_login(environ, url, token=token, agent_id=agent_id, agent_secret=secret)
    if args.json:
        print_json({"url": client.base_url, "agent_id": agent_id, "saved_to": str(path)})
    else:
        who = f"agent {agent_id}" if agent_id else "a token"
        print(f"logged in to {client.base_url} with {who} {scope}\nsaved to {path}")
    return EXIT_OK


def register(sub: SubParsers[argparse.ArgumentParser]) -> None:
    p = leaf(
        sub,
        "login",
        "save a credential for an Ordinaut server",
        "  ordinaut login --url http://127.0.0.1:8080 --agent-id ID --secret SECRET\n"
        '  echo "$SECRET" | ordinaut login --url https://ordinaut.example --agent-id ID --secret -\n'
        "  ordinaut login --url http://127.0.0.1:8080 --token TOKEN",
        cmd_login,
    )
    connection_flags(p)
    p.add_argument("--agent-id", metavar="ID", help="agent id (exchanged for a token)")
    p.add_argument(
        "--secret",
        metavar="SECRET",
        help="agent secret ('-' reads it from stdin; write --secret=S for one that starts with '-')",
    )
    p.description = (
        "Check a credential against the server and save it, per server URL, in\n"
        "$ORDINAUT_HOME/credentials.json or ~/.config/ordinaut/credentials.json (mode 0600).\n"
        "With an agent id and secret the token is renewed by itself when it expires."
    )
