"""Workers: lease due work with SKIP LOCKED, run pipelines, record outcomes, fenced on the lease.

``Worker.run_once`` (one lease + run + record), ``Worker.drain`` (until idle or out of time,
for Lambda) and ``run_worker`` (the long-running process) share one ``Worker``; only the
driver differs. No database transaction is open while a pipeline runs.

The package, one piece each:

* ``core``: the ``Worker``: leasing, overlap grouping, heartbeat, rescue, shutdown.
* ``attempt``: one attempt: pipeline, secrets, run bound, timing.
* ``pipelines``: the versioned pipeline cache (task id, payload version).
* ``outcomes``: pure decisions: whether a leased row runs, and what its result comes to
  (success, retry with backoff, dead letter).
* ``publish``: events a run publishes, and their routing when it is recorded.
* ``recorder``: batched, fenced writes of outcomes.
* ``drain``: the driver with a deadline (Lambda).
* ``loop``: the long-running process and its periodic jobs.
"""

from ordinaut.worker.core import Worker
from ordinaut.worker.drain import CUT_GRACE_S
from ordinaut.worker.loop import run_worker
from ordinaut.worker.outcomes import OUTCOMES, RetryPolicy, classify, not_run
from ordinaut.worker.recorder import Recorder

__all__ = [
    "CUT_GRACE_S",
    "OUTCOMES",
    "Recorder",
    "RetryPolicy",
    "Worker",
    "classify",
    "not_run",
    "run_worker",
]
