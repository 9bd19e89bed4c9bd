"""``ordinaut migrate``: apply the pending SQL migrations (running it twice is a no-op)."""

from __future__ import annotations

import argparse
import asyncio

from ordinaut.cli.common import (
    EXIT_OK,
    CommandError,
    SubParsers,
    configure_logging,
    database_errors,
    require_database,
    settings_from,
    subparser,
)
from ordinaut.config import Settings


async def apply_migrations(settings: Settings) -> list[str]:
    from ordinaut.store import db

    conn = await db.connect(settings)
    try:
        return await db.migrate(conn, settings.migrations_dir)
    finally:
        await conn.close()


def cmd_migrate(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    if args.migrations_dir:
        settings = settings.replace(migrations_dir=args.migrations_dir)
    require_database(settings)
    configure_logging(settings)
    with database_errors(settings):
        try:
            applied = asyncio.run(apply_migrations(settings))
        except RuntimeError as exc:  # a changed or missing migration file
            raise CommandError(str(exc)) from None
    if applied:
        for version in applied:
            print(f"applied {version}")
    else:
        print("database is up to date")
    return EXIT_OK


def register(sub: SubParsers[argparse.ArgumentParser]) -> None:
    p = subparser(
        sub,
        "migrate",
        "apply pending database migrations (running it twice is a no-op)",
        "Apply the SQL files in migrations/ that the database has not seen, in order, under an\n"
        "advisory lock, and record each in schema_migrations. Already applied: nothing happens.",
        "  ordinaut migrate\n"
        "  ORDINAUT_DATABASE_URL=postgresql://user:pass@127.0.0.1/ordinaut ordinaut migrate",
    )
    p.add_argument("--migrations-dir", metavar="DIR", help="directory of NNNN_name.sql files")
    p.set_defaults(func=cmd_migrate)
