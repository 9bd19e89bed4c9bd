"""Sample task bodies shared by API and integration tests."""

from __future__ import annotations

from typing import Any

CRON_TASK: dict[str, Any] = {
    "title": "Morning briefing",
    "schedule_kind": "cron",
    "schedule_expr": "0 8 * * 1-5",
    "timezone": "Europe/Chisinau",
    "payload": {
        "params": {"city": "Chisinau"},
        "pipeline": [{"id": "say", "uses": "echo", "with": {"text": "weather in ${params.city}"}}],
    },
}

# Valid when created (step "first" exists and comes earlier) but fails at run time: the path
# steps.first.output.nope is missing.
FAILING_PAYLOAD: dict[str, Any] = {
    "params": {},
    "pipeline": [
        {"id": "first", "uses": "echo", "with": {"a": 1}},
        {"id": "boom", "uses": "transform", "with": {"value": "${steps.first.output.nope}"}},
    ],
}
