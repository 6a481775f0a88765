"""Authentication, scopes and rate limiting for every non-public endpoint.

One ASGI middleware does both checks because they depend on each other. Requests are limited by class,
each class in its own bucket so one cannot starve another:

* health and metrics probes (:data:`EXEMPT_PATHS`) are not limited at all: orchestrators and scrapers poll
  them from one address, and a probe answered 429 would restart a healthy process;
* key-less webhook deliveries (``POST /hooks/{source}``, authenticated by their signature) count against
  their source, with ``OMNINODE_RATE_LIMIT_WEBHOOK_REQUESTS``, not against the sender's IP;
* other key-less requests and failed key attempts count against the client IP, so keys cannot be guessed
  at full speed;
* authenticated requests count against their key.

Each request costs at most one Redis script call. The client IP is the TCP peer, or, when that peer is one
of ``OMNINODE_TRUSTED_PROXIES``, the rightmost ``X-Forwarded-For`` address that is not a trusted proxy.
Verified keys are cached in-process for ``OMNINODE_AUTH_CACHE_SECONDS`` so the hot path needs no database
round trip; revoking a key here drops it from this process's cache at once.
"""

from __future__ import annotations

from omninode_bridge.platform.identity import principal_of, principal_or_none
from omninode_bridge.platform.security._cache import AuthCache
from omninode_bridge.platform.security._guards import (
    require_namespace,
    require_scope,
)
from omninode_bridge.platform.security._limits import RateLimitDecision, SlidingWindowLimiter
from omninode_bridge.platform.security._middleware import SecurityMiddleware, UnmatchedRouteLimits
from omninode_bridge.platform.security._request import EXEMPT_PATHS, OPTIONAL_AUTH, PUBLIC_PATH_PREFIXES

__all__ = [
    "EXEMPT_PATHS",
    "OPTIONAL_AUTH",
    "PUBLIC_PATH_PREFIXES",
    "AuthCache",
    "RateLimitDecision",
    "SecurityMiddleware",
    "SlidingWindowLimiter",
    "UnmatchedRouteLimits",
    "principal_of",
    "principal_or_none",
    "require_namespace",
    "require_scope",
]
