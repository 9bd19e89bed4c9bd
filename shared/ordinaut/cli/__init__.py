"""The ``ordinaut`` command (``main``; ``python -m ordinaut.cli`` runs it too).

- ``app``: the parser and the dispatcher; ``ordinaut --help`` and the exit codes.
- ``common``: what every command shares (exit codes, ``CommandError``, settings and logging,
  the database checks, parser pieces); it imports no other module of this package.
- one module per command group, each registering its own sub-parser: ``dev`` (the whole system
  on one machine), ``processes`` (api, scheduler, worker, relay, events-consumer), ``migrate``,
  ``agents``; and the REST commands ``login``, ``tasks`` (with ``tasks_edit``: update, preview,
  delete), ``runs``, ``events``, ``mcp``, ``admin``, which reach the API through ``rest`` and
  print through ``output`` (which, like ``common``, imports no other module of this package).

A new command group is a module with ``register(sub)``, listed in ``app.GROUPS``; a command's
flags are added next to the command, in its group's ``register``. Nothing else in ``ordinaut``
imports this package (import-linter contracts in pyproject.toml keep both rules).
"""

from ordinaut.cli.app import build_parser, main

__all__ = ["build_parser", "main"]
