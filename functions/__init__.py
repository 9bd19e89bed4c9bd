"""AWS Lambda entry points: ``functions.<name>.handler.handler`` for api, scheduler, worker,
events and migrate. Each handler builds its container once (settings, logs) and hands every
invocation to one call into ``ordinaut``; ``_runtime`` holds what they share."""
