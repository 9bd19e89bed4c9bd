"""Migrate Lambda: ``{"action": "migrate"}`` (Terraform, on every deploy) applies migrations;
``{"action": "create-admin", "name": ...}`` returns ``{agent_id, agent_secret}``."""

from __future__ import annotations

from typing import Any

from functions._runtime import Container
from functions.migrate.invocation import run_action

container = Container.from_environment()


@container.entry_point
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return container.run(run_action(container.settings, event))
