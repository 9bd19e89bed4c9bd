"""OpenTelemetry tracing, off unless the standard ``OTEL_*`` variables configure an exporter.

``configure(process)`` is called once per process (the CLI's ``api``, ``scheduler``, ``worker``
... commands): with ``OTEL_TRACES_EXPORTER`` (``otlp``, ``console``) or an OTLP endpoint
(``OTEL_EXPORTER_OTLP_ENDPOINT`` / ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``) set, it installs
the SDK's tracer provider with a batch exporter; everything else (service name, resource
attributes, sampler, headers) comes from the SDK's own ``OTEL_*`` variables. Otherwise the
API's no-op tracer stays in place and a span costs next to nothing.

Spans: each HTTP request (parented on an incoming ``traceparent``), each scheduler tick, each
lease statement, each run and each pipeline step. A request that creates work (``run_now``,
``POST /events``, or an ingest stream entry carrying a ``traceparent`` field) stores its W3C
``traceparent`` on the run, and the worker parents the run's span on it, so one trace follows
the work from the request to its steps.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    from opentelemetry import context as otel_context
    from opentelemetry.trace import Span

# OpenTelemetry is imported only once configure() turns tracing on: a process that does not
# trace (the default) never loads it, which kept tens of milliseconds out of a cold start.
log = logging.getLogger("ordinaut.tracing")

# Off, no span is even started: a run and its steps then cost the worker nothing extra.
ENABLED = False
EXPORTERS = ("otlp", "console")
MAX_TRACEPARENT = 128


class _NoSpan:
    """What a span is while tracing is off: every call is a no-op (as OpenTelemetry's own
    invalid span, without importing it)."""

    def set_attribute(self, key: str, value: Any) -> None:
        pass

    def set_attributes(self, attributes: Mapping[str, Any]) -> None:
        pass

    def add_event(self, name: str, attributes: Any = None, timestamp: Any = None) -> None:
        pass

    def record_exception(self, exception: BaseException, *args: Any, **kwargs: Any) -> None:
        pass

    def set_status(self, status: Any, description: str | None = None) -> None:
        pass

    def update_name(self, name: str) -> None:
        pass

    def is_recording(self) -> bool:
        return False

    def end(self, end_time: int | None = None) -> None:
        pass


NO_SPAN = cast("Span", _NoSpan())
_OFF: AbstractContextManager[Span] = nullcontext(NO_SPAN)


TRACER: Any = None  # set on first use while tracing is on


def _tracer() -> Any:
    global TRACER
    if TRACER is None:
        from opentelemetry import trace

        TRACER = trace.get_tracer("ordinaut")  # a proxy: follows the installed provider
    return TRACER


def exporters_from(environ: Mapping[str, str]) -> list[str]:
    """The span exporters the environment asks for; [] means tracing stays off."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return []
    named = environ.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if named:
        return [n.strip() for n in named.split(",") if n.strip() and n.strip() != "none"]
    if environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or environ.get(
        "OTEL_EXPORTER_OTLP_ENDPOINT"
    ):
        return ["otlp"]
    return []


def configure(process: str, environ: Mapping[str, str] | None = None) -> bool:
    """Install the SDK's tracer provider when ``OTEL_*`` asks for an exporter; returns
    whether tracing is on. ``process`` names the service unless ``OTEL_SERVICE_NAME`` does."""
    env = os.environ if environ is None else environ
    names = exporters_from(env)
    if not names:
        return False
    from opentelemetry import trace
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter

    attributes: dict[str, Any] = {}
    if not env.get("OTEL_SERVICE_NAME"):
        attributes[SERVICE_NAME] = f"ordinaut-{process}"
    provider = TracerProvider(resource=Resource.create(attributes))
    for name in names:
        if name == "otlp":
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        elif name == "console":
            provider.add_span_processor(BatchSpanProcessor(ConsoleSpanExporter()))
        else:
            log.warning("unknown OTEL_TRACES_EXPORTER ignored", extra={"exporter": name})
    trace.set_tracer_provider(provider)
    global ENABLED
    ENABLED = True
    log.info("tracing on", extra={"exporters": names})
    return True


def flush(timeout_ms: int = 2_000) -> bool:
    """Export the spans still batched (a Lambda invocation ends: the container may freeze);
    True when there was nothing to do or everything went out within ``timeout_ms``."""
    if not ENABLED:
        return True
    from opentelemetry import trace

    provider = trace.get_tracer_provider()
    force_flush = getattr(provider, "force_flush", None)
    return bool(force_flush(timeout_ms)) if force_flush is not None else True


def current_traceparent() -> str | None:
    """The W3C ``traceparent`` of the current span, to store with work it causes (None when
    there is no sampled span, e.g. tracing is off)."""
    if not ENABLED:
        return None
    from opentelemetry import propagate

    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier.get("traceparent")


def parent_context(traceparent: str | None) -> otel_context.Context | None:
    """The context a stored or received ``traceparent`` names (None: start a new trace)."""
    if not traceparent or len(traceparent) > MAX_TRACEPARENT:
        return None
    from opentelemetry import propagate

    return propagate.extract({"traceparent": traceparent})


def start_server_span(method: str, traceparent: str | None) -> tuple[Span, object]:
    """Start an HTTP request's span as the current one; the caller ends it with
    ``end_server_span`` (pure ASGI middleware has no ``with`` around the whole request)."""
    if not ENABLED:
        return NO_SPAN, None
    from opentelemetry import context as otel_context
    from opentelemetry import trace
    from opentelemetry.trace import SpanKind

    span = _tracer().start_span(
        method,
        context=parent_context(traceparent),
        kind=SpanKind.SERVER,
        attributes={"http.request.method": method},
    )
    token = otel_context.attach(trace.set_span_in_context(span))
    return span, token


def end_server_span(span: Span, token: object, method: str, route: str, status: int) -> None:
    if token is None:  # tracing off
        return
    from opentelemetry import context as otel_context
    from opentelemetry.trace import Status, StatusCode

    span.update_name(f"{method} {route}")
    span.set_attribute("http.route", route)
    span.set_attribute("http.response.status_code", status)
    if status >= 500:
        span.set_status(Status(StatusCode.ERROR))
    span.end()
    otel_context.detach(token)  # type: ignore[arg-type]


def span(
    name: str, *, parent: str | None = None, attributes: Mapping[str, Any] | None = None
) -> AbstractContextManager[Span]:
    """A span around a unit of work (a tick, a lease, a run, a step); ``parent`` is a stored
    ``traceparent`` to continue, else the current span is the parent. Off: a no-op span."""
    if not ENABLED:
        return _OFF
    return _span(name, parent, attributes)


@contextmanager
def _span(name: str, parent: str | None, attributes: Mapping[str, Any] | None) -> Iterator[Span]:
    with _tracer().start_as_current_span(
        name, context=parent_context(parent), attributes=dict(attributes or {})
    ) as current:
        yield current
