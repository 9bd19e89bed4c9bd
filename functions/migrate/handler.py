"""Migrate Lambda: ``{"action": "migrate"}`` (Terraform, on every deploy) applies migrations;
``{"action": "create-admin", "name": ...}`` returns ``{agent_id, agent_secret}``."""

from __future__ import annotations

from typing import Any

from functions._runtime import Container
from functions.migrate.invocation import connect_window_s, run_action

container = Container.from_environment()


@container.entry_point
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    within_s = connect_window_s(context.get_remaining_time_in_millis() / 1000)
    return container.run(run_action(container.settings, event, within_s=within_s))
