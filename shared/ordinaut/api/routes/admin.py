"""``GET /admin/overview`` (admin): the queue, the schedulers and the workers in one answer,
what ``ordinaut admin`` prints. Dead letters of every agent: ``GET /runs?owner=*&status=...``.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from fastapi.encoders import jsonable_encoder

from ordinaut import auth
from ordinaut.api.deps import DepsDep, Now, Principal, require
from ordinaut.api.strict import JSONRoute
from ordinaut.store import heartbeats, work

router = APIRouter(prefix="/admin", tags=["admin"], route_class=JSONRoute)

Admin = Annotated[Principal, Depends(require(auth.ADMIN))]
MAX_WORKERS = 200
MAX_SCHEDULERS = 20


@router.get("/overview")
async def overview(who: Admin, deps: DepsDep, now: Now) -> dict[str, Any]:
    """Due work by state and the oldest due row's age; each scheduler's last tick and its
    age; each worker (live ones first) with the runs it holds now."""
    window = heartbeats.LIVE_HEARTBEATS * deps.settings.heartbeat_s
    pool = await deps.pool()
    async with pool.acquire() as conn:
        stats = await work.queue_stats(conn, now)
        schedulers = await heartbeats.schedulers(conn, limit=MAX_SCHEDULERS)
        workers = await heartbeats.workers(
            conn, since=now - timedelta(seconds=window), limit=MAX_WORKERS
        )
    for row in schedulers:
        row["age_s"] = round(max(0.0, (now - row["last_tick_at"]).total_seconds()), 3)
    return jsonable_encoder(
        {
            "checked_at": now,
            "queue": {
                "due": stats["due"],
                "scheduled": stats["queued"] - stats["due"],
                "running": stats["running"],
                "oldest_due_age_s": round(stats["lag_s"], 3),
            },
            "schedulers": schedulers,
            "workers": workers,
            "live_workers": sum(1 for w in workers if w["live"]),
            "in_flight": sum(w["in_flight"] for w in workers if w["live"]),
            "worker_window_s": window,
        }
    )
