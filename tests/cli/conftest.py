"""Reuses tests/client/conftest.py: the API app, agents, the in-process worker, live_url."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

_PATH = Path(__file__).resolve().parents[1] / "client" / "conftest.py"
if "_fixtures_client" not in sys.modules:
    _spec = importlib.util.spec_from_file_location("_fixtures_client", _PATH)
    assert _spec is not None and _spec.loader is not None
    sys.modules["_fixtures_client"] = importlib.util.module_from_spec(_spec)
    _spec.loader.exec_module(sys.modules["_fixtures_client"])
_shared = sys.modules["_fixtures_client"]

app, make_agent, admin, agent = _shared.app, _shared.make_agent, _shared.admin, _shared.agent
sdk, run_worker, live_url = _shared.sdk, _shared.run_worker, _shared.live_url
e2e_database, processes, api = _shared.e2e_database, _shared.processes, _shared.api
