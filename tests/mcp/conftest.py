"""Reuses tests/client/conftest.py (the API app, agents, the in-process worker, live_url) and
the API's ASGI ``client``."""

from __future__ import annotations

from support import load_fixtures

_shared = load_fixtures("client")

app, make_agent, admin, agent = _shared.app, _shared.make_agent, _shared.admin, _shared.agent
sdk, run_worker, live_url = _shared.sdk, _shared.run_worker, _shared.live_url
e2e_database, processes, api = _shared.e2e_database, _shared.processes, _shared.api
client = load_fixtures("api").client
