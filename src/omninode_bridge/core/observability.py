"""Structured logging, correlation ids, tracing and Prometheus metrics.

- structlog renders one JSON object per line for our code *and* the stdlib loggers (uvicorn,
  SQLAlchemy, aiokafka, FastStream), each carrying ``correlation_id`` and, inside a span, ``trace_id``.
- :class:`CorrelationMiddleware` takes ``X-Correlation-ID`` (or makes one), binds it to the log context,
  returns it on every response and logs one line per request.
- OpenTelemetry: an SDK tracer provider always runs (so logs get trace ids); spans are exported over
  OTLP/HTTP only when ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set. Without an exporter the OpenTelemetry ASGI
  middleware is not installed: :class:`CorrelationMiddleware` then only sets the request's trace context
  (see :func:`request_trace_context`).
"""

from __future__ import annotations

import contextlib
import logging
import re
import sys
import time
from collections.abc import Callable, Iterable
from typing import Any

import structlog
from litestar.enums import ScopeType
from litestar.exceptions import HTTPException
from litestar.types import ASGIApp, HTTPScope, Message, Receive, Scope, Send
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ALWAYS_ON, ParentBased
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from prometheus_client import REGISTRY, Gauge
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from structlog.typing import EventDict, WrappedLogger
from uuid_utils.compat import uuid7

from omninode_bridge.core.safe_errors import format_exception_safely, loggable_error
from omninode_bridge.core.settings import ObservabilitySettings

__all__ = [
    "CORRELATION_HEADER",
    "REQUEST_BUCKETS",
    "CorrelationMiddleware",
    "GaugeCollector",
    "breaker_state_gauge",
    "configure_logging",
    "configure_tracing",
    "register_gauges",
    "request_trace_context",
]

CORRELATION_HEADER = "X-Correlation-ID"
#: Request latency buckets (seconds), as in seed 001: 5 ms to 1 s.
REQUEST_BUCKETS: list[str | float] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0]
_VALID_CORRELATION = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")

breaker_state_gauge = Gauge(
    "omninode_circuit_breaker_state",
    "Circuit breaker state: 0 closed, 1 half-open, 2 open.",
    ["dependency"],
)


def _add_trace_ids(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    span = trace.get_current_span()
    ctx = span.get_span_context()
    if ctx.is_valid:
        event_dict["trace_id"] = format(ctx.trace_id, "032x")
        event_dict["span_id"] = format(ctx.span_id, "016x")
    return event_dict


#: Warnings that are wrong for this app, by (logger, event). FastStream warns at every subscriber start
#: that topic auto-creation is off, which is deliberate: ``ensure_topics`` creates the catalog's topics,
#: with their partition counts, before any subscriber starts.
_EXPECTED_WARNINGS = frozenset(
    {("omninode_bridge.kafka", "Auto create topics is disabled. Make sure the topics exist.")}
)


def _drop_expected_warnings(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    if (event_dict.get("logger"), event_dict.get("event")) in _EXPECTED_WARNINGS:
        raise structlog.DropEvent
    return event_dict


def _safe_exception_values(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    """An exception passed as a field value (``error=exc``) is logged as its safe message."""
    for key, value in event_dict.items():
        if isinstance(value, BaseException) and key != "exc_info":
            event_dict[key] = loggable_error(value)
    return event_dict


def configure_logging(settings: ObservabilitySettings) -> None:
    """Route structlog and the stdlib loggers through one renderer (JSON lines by default).

    Tracebacks (ours and the stdlib loggers': uvicorn, SQLAlchemy, aiokafka, FastStream) are rendered by
    :func:`format_exception_safely`: frames without locals, database errors reduced to a classification,
    so a failed statement's values never reach the log. The console renderer gets the same text, never
    its own (rich, locals-showing) traceback.
    """
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _add_trace_ids,
    ]
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if settings.log_json
        else structlog.dev.ConsoleRenderer(exception_formatter=structlog.dev.plain_traceback)
    )
    render = [_safe_exception_values, structlog.processors.ExceptionRenderer(format_exception_safely), renderer]
    # Our own events are rendered by structlog's chain and written by _DirectLogger, with no stdlib
    # LogRecord, handler or formatter round trip; the stdlib loggers' records get the same processors
    # through the formatter, so both kinds of line look the same.
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *shared,
            _drop_expected_warnings,
            structlog.processors.StackInfoRenderer(),
            _RenderOrWrap(render),
        ],
        logger_factory=_direct_logger,
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *render],
    )
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    global _handler  # loggers cached before a reconfiguration write to the new handler too
    _handler = handler
    root.setLevel(settings.log_level.upper())
    # Our request line replaces uvicorn's access log; library chatter stays at WARNING.
    for name, level in {
        "uvicorn.access": logging.WARNING,
        "aiokafka": logging.WARNING,
        "faststream": logging.WARNING,
        # Engines hide bound parameters (core/db.py); at INFO the engine would still log every statement.
        "sqlalchemy.engine": logging.WARNING,
    }.items():
        logging.getLogger(name).setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True


_handler: logging.StreamHandler[Any] = logging.StreamHandler(sys.stdout)


class _DirectLogger:
    """What structlog's stdlib ``BoundLogger`` wraps: level checks and name from the stdlib logger of the
    same name (so ``OMNINODE_LOG_LEVEL`` and per-library levels apply alike), a rendered line written
    straight to the root handler's stream under its lock. When other handlers are attached (a test's
    capture, a library's), the event goes the stdlib way instead, so every handler still sees it.
    """

    __slots__ = ("_logger", "name")

    def __init__(self, name: str) -> None:
        self.name = name
        self._logger = logging.getLogger(name)

    def isEnabledFor(self, level: int) -> bool:  # the stdlib name filter_by_level calls
        return self._logger.isEnabledFor(level)

    def getEffectiveLevel(self) -> int:  # the stdlib name
        return self._logger.getEffectiveLevel()

    def only_root_handler(self) -> bool:
        """True when the one handler this event would reach is the configured root handler."""
        current: logging.Logger | None = self._logger
        while current is not None:
            if current.handlers and (current.parent is not None or current.handlers != [_handler]):
                return False
            if not current.propagate:
                return False
            current = current.parent
        return True

    def _emit(self, method: str, *args: Any, **kwargs: Any) -> None:
        if kwargs or len(args) != 1 or not isinstance(args[0], str):
            getattr(self._logger, method)(*args, **kwargs)  # wrapped for the formatter: the stdlib way
            return
        handler = _handler
        with handler.lock or contextlib.nullcontext():
            try:
                handler.stream.write(args[0] + "\n")
                handler.stream.flush()
            except Exception:  # as logging.Handler.emit: a broken stream must not break the caller
                handler.handleError(logging.makeLogRecord({"msg": args[0]}))

    def debug(self, *args: Any, **kwargs: Any) -> None:
        self._emit("debug", *args, **kwargs)

    def info(self, *args: Any, **kwargs: Any) -> None:
        self._emit("info", *args, **kwargs)

    def warning(self, *args: Any, **kwargs: Any) -> None:
        self._emit("warning", *args, **kwargs)

    def error(self, *args: Any, **kwargs: Any) -> None:
        self._emit("error", *args, **kwargs)

    def exception(self, *args: Any, **kwargs: Any) -> None:
        self._emit("exception", *args, **kwargs)

    def critical(self, *args: Any, **kwargs: Any) -> None:
        self._emit("critical", *args, **kwargs)

    warn = warning
    fatal = critical

    def __getattr__(self, name: str) -> Any:
        return getattr(self._logger, name)


class _RenderOrWrap:
    """structlog's last processor: render the line (for :class:`_DirectLogger` to write) or, when other
    handlers listen, hand the event to the stdlib formatter as ``ProcessorFormatter.wrap_for_formatter``."""

    def __init__(self, render: list[Any]) -> None:
        self.render = render

    def __call__(self, logger: WrappedLogger, method_name: str, event_dict: EventDict) -> Any:
        if isinstance(logger, _DirectLogger) and logger.only_root_handler():
            rendered: Any = event_dict
            for processor in self.render:
                rendered = processor(logger, method_name, rendered)
            return rendered
        return structlog.stdlib.ProcessorFormatter.wrap_for_formatter(logger, method_name, event_dict)


_stdlib_factory = structlog.stdlib.LoggerFactory()


def _direct_logger(*args: Any) -> _DirectLogger:
    """structlog's logger factory: the logger named in ``get_logger(name)`` or, as structlog's stdlib
    factory does, the caller's module's."""
    return _DirectLogger(_stdlib_factory(*args).name)


_tracer_provider: TracerProvider | None = None


def configure_tracing(settings: ObservabilitySettings) -> TracerProvider:
    """Install the SDK tracer provider once per process; export only when an OTLP endpoint is set."""
    global _tracer_provider  # one provider per process: OpenTelemetry refuses to replace it
    if _tracer_provider is None:
        # Without an exporter nothing would read recorded spans: sample none. Unsampled spans still get
        # trace ids (logs keep their trace_id) but skip span bookkeeping, a measured ~10% of a small request.
        sampler = ParentBased(ALWAYS_ON) if settings.otlp_endpoint else ALWAYS_OFF
        provider = TracerProvider(resource=Resource.create({"service.name": settings.service_name}), sampler=sampler)
        if settings.otlp_endpoint:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        trace.set_tracer_provider(provider)
        _tracer_provider = provider
    return _tracer_provider


_ids = RandomIdGenerator()
_traceparent = TraceContextTextMapPropagator()


def request_trace_context(traceparent: str | None) -> otel_context.Context:
    """The trace context of a request served without span recording: a non-recording server span in the
    caller's trace (W3C ``traceparent``) or in a new one.

    This is what the OpenTelemetry ASGI middleware leaves behind when its sampler records nothing, without
    the per-request attribute collection, send/receive wrapping and duration metrics that nothing reads
    when no exporter is set; that machinery measured ~18% of a small request's CPU (``bench.stamping``).
    Log lines still carry the trace id, the caller's when it sent one.
    """
    parent = _traceparent.extract({"traceparent": traceparent}) if traceparent else otel_context.Context()
    parent_span = trace.get_current_span(parent).get_span_context()
    span_context = trace.SpanContext(
        trace_id=parent_span.trace_id if parent_span.is_valid else _ids.generate_trace_id(),
        span_id=_ids.generate_span_id(),
        is_remote=False,
        trace_flags=parent_span.trace_flags if parent_span.is_valid else trace.TraceFlags(trace.TraceFlags.DEFAULT),
    )
    return trace.set_span_in_context(trace.NonRecordingSpan(span_context), parent)


def _bind_current_trace_ids() -> None:
    span = trace.get_current_span().get_span_context()
    if span.is_valid:
        structlog.contextvars.bind_contextvars(
            trace_id=format(span.trace_id, "032x"), span_id=format(span.span_id, "016x")
        )


class CorrelationMiddleware:
    """Assigns the correlation id, binds it to logs and the response, and logs each request once.

    It wraps the whole app (not a route), so unmatched routes (404, 405) get their correlation id too.

    With ``trace_context`` (set when no span exporter runs) it also makes the request's trace context
    current, standing in for the OpenTelemetry ASGI middleware.
    """

    def __init__(self, app: ASGIApp, *, trace_context: bool = False) -> None:
        self.app = app
        self.trace_context = trace_context
        self.log = structlog.get_logger("omninode_bridge.http")
        self._level_of = logging.getLogger("omninode_bridge.http")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await self.app(scope, receive, send)
            return
        incoming = traceparent = None
        for name, value in scope["headers"]:
            if name == b"x-correlation-id":
                incoming = value.decode("latin-1")
            elif name == b"traceparent":
                traceparent = value.decode("latin-1")
        token = otel_context.attach(request_trace_context(traceparent)) if self.trace_context else None
        # Time-ordered (UUIDv7): the event log's correlation index takes every event's id, and random ones
        # land each insert on a random page of it (half that index's cost, and a full-page image per row
        # after a checkpoint, measured on a 600k-row log).
        correlation_id = incoming if incoming and _VALID_CORRELATION.match(incoming) else str(uuid7())
        scope.setdefault("state", {})["correlation_id"] = correlation_id
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(correlation_id=correlation_id)
        started = time.perf_counter()
        status = 500
        header = (b"x-correlation-id", correlation_id.encode("latin-1"))

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                if token is None:
                    # The OpenTelemetry middleware runs inside this one: keep its ids for the request line.
                    _bind_current_trace_ids()
                headers = message.get("headers", [])
                if not any(name.lower() == b"x-correlation-id" for name, _ in headers):
                    message["headers"] = [*headers, header]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except HTTPException as exc:  # answered by Litestar's outer exception handler
            status = exc.status_code
            raise
        finally:
            if self._level_of.isEnabledFor(logging.INFO):
                self._log_request(scope, status, started)
            structlog.contextvars.clear_contextvars()
            if token is not None:
                otel_context.detach(token)

    def _log_request(self, scope: HTTPScope, status: int, started: float) -> None:
        self.log.info(
            "request",
            method=scope["method"],
            path=scope["path"],
            status=status,
            duration_ms=round((time.perf_counter() - started) * 1000, 2),
            client=(scope.get("client") or ("", 0))[0],
        )


class GaugeCollector(Collector):
    """A Prometheus collector that reads gauges from callbacks at scrape time.

    Registered once per process; apps (tests build many) replace the callbacks they own.
    """

    def __init__(self) -> None:
        self.sources: dict[str, tuple[str, Callable[[], Iterable[tuple[dict[str, str], float]]]]] = {}

    def collect(self) -> Iterable[GaugeMetricFamily]:
        for name, (help_text, source) in list(self.sources.items()):
            try:
                samples = list(source())
            except Exception as exc:  # a scrape must never fail because one source did
                structlog.get_logger(__name__).debug("gauge source failed", gauge=name, error=loggable_error(exc))
                continue
            labels = sorted({key for sample_labels, _ in samples for key in sample_labels})
            family = GaugeMetricFamily(name, help_text, labels=labels)
            for sample_labels, value in samples:
                family.add_metric([sample_labels.get(key, "") for key in labels], value)
            yield family


_gauges = GaugeCollector()
REGISTRY.register(_gauges)


def register_gauges(name: str, help_text: str, source: Callable[[], Iterable[tuple[dict[str, str], float]]]) -> None:
    """Expose a scrape-time gauge family; calling again with the same name replaces the source."""
    _gauges.sources[name] = (help_text, source)
