"""API Lambda: ``create_app`` through Mangum, lifespan off (it would run on every invocation).

The app's Deps open their asyncpg pool on the first request and keep it, on the container's
event loop, for the warm invocations that follow.
"""

from __future__ import annotations

import gc

# A cold start imports ~700 modules and builds the app: the collector ran ~180 times meanwhile,
# rescanning a heap whose objects all live as long as the container (~40 ms of CPU in a ~0.4 s
# start). It stays off until the app is built; then those objects are frozen out of the
# collections that requests trigger, which would otherwise walk them again. (An import that
# fails leaves it off, in a process that can only report that failure.)
gc.disable()

from mangum import Mangum  # noqa: E402

from functions._runtime import Container, count_now  # noqa: E402
from ordinaut.api import create_app  # noqa: E402

container = Container.from_environment()
app = create_app(container.settings)
# rotated credentials (Container.refresh) reach the app's pool and Redis client too
container.on_settings(app.state.deps.use_settings)
if app.state.deps.waker is not None:  # a worker wake-up SQS refused: visible in CloudWatch
    app.state.deps.waker.on_failure = lambda: count_now("WakeupsFailed")
handler = container.entry_point(Mangum(app, lifespan="off"))

gc.freeze()
gc.enable()
