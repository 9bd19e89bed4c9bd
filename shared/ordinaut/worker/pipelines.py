"""The worker's pipeline cache: each task version's payload and compiled pipeline.

A leased row names its task's payload version (``LeasedRun.task_version``); the payload is
read and compiled once per version a worker has not seen (decoding it with every leased row
cost more than the rest of the row). An edit bumps the version, so it changes the key: a
cached entry is never stale, it only ages out (least recently used first).
"""

from __future__ import annotations

import uuid
from collections import OrderedDict
from typing import Any

import asyncpg

from ordinaut import triggers
from ordinaut.errors import InvalidPipeline
from ordinaut.pipeline import CompiledPipeline, PipelineLimits, compile_payload
from ordinaut.pipeline.tools import ToolRegistry
from ordinaut.store import work
from ordinaut.store.rows import LeasedRun

# a task version's payload, and its compiled main pipeline (the payload itself when invalid)
Pipeline = tuple[dict[str, Any], CompiledPipeline | dict[str, Any]]


class PipelineCache:
    """(task_id, payload version) -> its payload and compiled pipeline, for one worker."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        registry: ToolRegistry,
        limits: PipelineLimits,
        *,
        max_entries: int = 1024,
    ) -> None:
        self.pool = pool
        self.registry = registry
        self.limits = limits
        self.max_entries = max_entries
        self.entries: OrderedDict[tuple[uuid.UUID, int], Pipeline] = OrderedDict()

    def _remember(self, key: tuple[uuid.UUID, int], payload: dict[str, Any]) -> Pipeline:
        main = triggers.main_payload(payload)  # without filter, check, condition
        try:
            compiled: CompiledPipeline | dict[str, Any] = compile_payload(
                main, registry=self.registry, limits=self.limits
            )
        except InvalidPipeline:
            compiled = main  # execute() turns it into a failed attempt naming the problem
        entry = self.entries[key] = (payload, compiled)
        while len(self.entries) > self.max_entries:
            self.entries.popitem(last=False)
        return entry

    async def load(self, rows: list[LeasedRun]) -> None:
        """Read and compile the payloads of task versions this worker has not seen yet."""
        missing = {r.task_id for r in rows if (r.task_id, r.task_version) not in self.entries}
        if not missing:
            return
        latest: dict[uuid.UUID, Pipeline] = {}
        for t in await work.task_payloads(self.pool, list(missing)):
            latest[t.id] = self._remember((t.id, t.payload_version), t.payload)
        for r in rows:
            key = (r.task_id, r.task_version)
            if key not in self.entries and r.task_id in latest:
                # edited between the lease and this read: the run gets the version read now
                self.entries[key] = latest[r.task_id]

    async def get(self, row: LeasedRun) -> Pipeline | None:
        """The row's task payload and compiled pipeline; None when the task is gone."""
        key = (row.task_id, row.task_version)
        hit = self.entries.get(key)
        if hit is None:
            await self.load([row])
            hit = self.entries.get(key)
        else:
            self.entries.move_to_end(key)
        return hit
