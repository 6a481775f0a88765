"""Prometheus metrics of HTTP requests, with the label children resolved once per route and status.

The same four families as Litestar's Prometheus plugin (``<prefix>_requests_total``,
``<prefix>_request_duration_seconds``, ``<prefix>_requests_in_progress``, ``<prefix>_requests_error_total``,
labelled ``method``, ``path`` (the route template), ``status_code`` and ``app_name``), without its
per-request costs: the plugin builds a ``Request``, two label dicts and four ``labels(...)`` lookups (each
a lock and a tuple of str() conversions) on every request. Here each (method, route, status) resolves its
children once and keeps them in a dict, so a request costs two dict lookups, a gauge inc/dec, a counter
inc and a histogram observe.
"""

from __future__ import annotations

import re
import time
from typing import Any

from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send
from prometheus_client import Counter, Gauge, Histogram

__all__ = ["HttpMetrics", "HttpMetricsMiddleware"]

_LABELS = ("method", "path", "status_code", "app_name")


class HttpMetrics:
    """The request metric families of one prefix (registered once per process) and their cached children."""

    _by_prefix: dict[str, HttpMetrics] = {}

    def __init__(self, prefix: str, buckets: list[str | float]) -> None:
        self.requests = Counter(f"{prefix}_requests_total", "Total requests", labelnames=_LABELS)
        self.duration = Histogram(
            f"{prefix}_request_duration_seconds", "Request duration, in seconds", labelnames=_LABELS, buckets=buckets
        )
        self.in_progress = Gauge(
            f"{prefix}_requests_in_progress",
            "Total requests currently in progress",
            labelnames=_LABELS,
            multiprocess_mode="livesum",
        )
        self.errors = Counter(f"{prefix}_requests_error_total", "Total errors in requests", labelnames=_LABELS)
        self._done: dict[tuple[str, str, int, str], tuple[Any, Any, Any | None]] = {}
        self._running: dict[tuple[str, str, str], Any] = {}

    @classmethod
    def of(cls, prefix: str, buckets: list[str | float]) -> HttpMetrics:
        """The families of ``prefix``: Prometheus refuses a second registration, and tests build many apps."""
        metrics = cls._by_prefix.get(prefix)
        if metrics is None:
            metrics = cls._by_prefix[prefix] = cls(prefix, buckets)
        return metrics

    def running(self, method: str, path: str, app_name: str) -> Any:
        """The in-progress gauge child of a route (labelled with status 200, as Litestar's plugin does)."""
        key = (method, path, app_name)
        child = self._running.get(key)
        if child is None:
            child = self._running[key] = self.in_progress.labels(method, path, 200, app_name)
        return child

    def finished(self, method: str, path: str, status: int, app_name: str) -> tuple[Any, Any, Any | None]:
        """(request counter, duration histogram, error counter or None) children of a route and status."""
        key = (method, path, status, app_name)
        children = self._done.get(key)
        if children is None:
            values = (method, path, status, app_name)
            errors = self.errors.labels(*values) if status >= 500 else None
            children = self._done[key] = (self.requests.labels(*values), self.duration.labels(*values), errors)
        return children


class HttpMetricsMiddleware:
    """Route middleware recording each matched request (paths matching ``exclude`` are left out)."""

    def __init__(
        self, app: ASGIApp, *, app_name: str, prefix: str, buckets: list[str | float], exclude: str | None = None
    ) -> None:
        self.app = app
        self.app_name = app_name
        self.metrics = HttpMetrics.of(prefix, buckets)
        self.exclude = re.compile(exclude) if exclude else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP or (self.exclude is not None and self.exclude.search(scope["path"])):
            await self.app(scope, receive, send)
            return
        method: str = scope["method"]
        path: str = scope.get("path_template") or scope["path"]
        started = time.perf_counter()
        status = 200
        duration = 0.0

        async def timed_send(message: Message) -> None:
            nonlocal status, duration
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body":
                duration = time.perf_counter() - started
            await send(message)

        running = self.metrics.running(method, path, self.app_name)
        running.inc()
        try:
            await self.app(scope, receive, timed_send)
        finally:
            running.dec()
            requests, histogram, errors = self.metrics.finished(method, path, status, self.app_name)
            if errors is not None:
                errors.inc()
            requests.inc()
            histogram.observe(duration)
