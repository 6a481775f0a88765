"""The app with platform layers bypassed, for ``bench.platform``: ``BENCH_BYPASS`` names the layers.

``create_app`` builds the middleware stack inline, so each layer is replaced, in this bench process only,
by a pass-through before the app is built. ``auth`` keeps the principal (a fixed admin key, as the cache
would return) so the route's guards still pass; ``ratelimit`` is the limiter switched off.
"""

from __future__ import annotations

import os
import uuid
from typing import Any

from litestar import Litestar, Request
from litestar.types import ASGIApp, Receive, Scope, Send

from omninode_bridge import app as app_module
from omninode_bridge import platform
from omninode_bridge.core import observability
from omninode_bridge.platform import schemas

__all__ = ["LAYERS", "create_app"]

#: Layer name -> what bypassing it removes.
LAYERS = {
    "logging": "the request log line (correlation id and trace context kept)",
    "correlation": "the correlation middleware altogether (id, trace context, log line)",
    "tracecontext": "the stand-in OpenTelemetry trace context (OTel off)",
    "prometheus": "the Prometheus request metrics",
    "ratelimit": "the leased rate limit",
    "auth": "API key authentication (cache lookup) and rate limit",
    "unmatched": "the unmatched-route rate-limit wrapper",
    "inputguard": "the query/path input guard",
    "saferequest": "SafeRequest (Litestar's Request instead)",
}


class _Pass:
    def __init__(self, app: ASGIApp, **_: Any) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)


class _FixedPrincipal:
    """Sets an admin principal, as a cache hit would, and nothing else."""

    principal = schemas.Principal(key_id=uuid.uuid4(), name="bench", scopes=frozenset({"admin"}), namespaces=None)

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope["user"] = self.principal
        scope["auth"] = self.principal.key_id
        await self.app(scope, receive, send)


def create_app() -> Litestar:
    """``omninode_bridge.app.create_app`` with the layers in ``BENCH_BYPASS`` (comma-separated) left out."""
    bypass = {name for name in os.environ.get("BENCH_BYPASS", "").split(",") if name}
    unknown = bypass - LAYERS.keys()
    if unknown:
        raise ValueError(f"unknown layers: {sorted(unknown)}")
    if "correlation" in bypass:
        app_module.CorrelationMiddleware = _Pass  # type: ignore[misc,assignment]
    if "logging" in bypass:
        original_init = observability.CorrelationMiddleware.__init__

        def init(self: Any, app: ASGIApp, **kwargs: Any) -> None:
            original_init(self, app, **kwargs)
            self.log = _Silent()

        observability.CorrelationMiddleware.__init__ = init  # type: ignore[method-assign]
    if "tracecontext" in bypass:
        observability.request_trace_context = lambda _: observability.otel_context.Context()  # type: ignore[assignment]
    if "prometheus" in bypass:
        app_module.HttpMetricsMiddleware = _Pass  # type: ignore[misc,assignment]
    if "auth" in bypass:
        platform.SecurityMiddleware = _FixedPrincipal  # type: ignore[misc,assignment]
    if "ratelimit" in bypass:
        os.environ["OMNINODE_RATE_LIMIT_ENABLED"] = "false"
    if "unmatched" in bypass:
        platform.UnmatchedRouteLimits = _Pass  # type: ignore[misc,assignment]
    if "inputguard" in bypass:
        app_module.InputGuardMiddleware = _Pass  # type: ignore[misc,assignment]
    if "saferequest" in bypass:
        app_module.SafeRequest = Request  # type: ignore[misc,assignment]
    return app_module.create_app()


class _Silent:
    def info(self, *_: Any, **__: Any) -> None:
        return None
