"""What the security middleware reads from a request: public paths, the presented key, the client address."""

from __future__ import annotations

import functools
from typing import Any

from litestar.types import Scope

from omninode_bridge.platform.client_address import ClientAddress

#: Paths served without a key: health probes, metrics scraping and the API docs (OpenAPI and AsyncAPI).
PUBLIC_PATH_PREFIXES = ("/health", "/metrics", "/schema", "/asyncapi.json", "/asyncapi")

#: Probes never rate limited (and given no RateLimit-* headers): health checks and the metrics scrape.
EXEMPT_PATHS = frozenset({"/health", "/health/", "/health/live", "/health/ready", "/metrics", "/metrics/"})

#: Route handler ``opt`` for endpoints that authorise requests themselves (signed webhooks, a static page,
#: a stream opened with a ticket): a presented key is still verified (401 if invalid) and sets the
#: principal, but a request without a key goes on anonymously, rate limited per client IP, or per source
#: when the route has a ``{source}`` path parameter and the method is POST (a webhook delivery).
OPTIONAL_AUTH: dict[str, Any] = {"auth": "optional"}


def webhook_source(scope: Scope) -> str | None:
    """The source of a key-less webhook delivery (an optional-auth POST with a ``{source}`` parameter)."""
    if scope.get("method") != "POST":
        return None
    source = scope.get("path_params", {}).get("source")
    return source[:255] if isinstance(source, str) and source else None


def auth_is_optional(scope: Scope) -> bool:
    handler = scope.get("route_handler")
    return handler is not None and bool(handler.opt.get("auth") == OPTIONAL_AUTH["auth"])


def presented_key(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name in (b"x-api-key", b"x-consul-token"):  # Consul clients send their token as X-Consul-Token
            return value.decode("latin-1").strip() or None
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token.strip()
    return None


@functools.lru_cache(maxsize=8)
def client_address(trusted_proxies: str) -> ClientAddress:
    """The client-address resolver of a trusted-proxy list, parsed once per distinct setting."""
    return ClientAddress(trusted_proxies)
