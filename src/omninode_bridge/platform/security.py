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

import functools
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import msgspec
import structlog
from litestar.connection import ASGIConnection
from litestar.enums import ScopeType
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException
from litestar.handlers.base import BaseRouteHandler
from litestar.types import ASGIApp, Message, Receive, Scope, Send
from redis.asyncio import Redis
from redis.exceptions import RedisError

from omninode_bridge.core.db import Database
from omninode_bridge.core.errors import ProblemError
from omninode_bridge.platform import schemas
from omninode_bridge.platform.client_address import ClientAddress
from omninode_bridge.platform.services import ApiKeyService, hash_key, record_audit
from omninode_bridge.settings import SecuritySettings

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

log = structlog.get_logger(__name__)

#: Paths served without a key: health probes, metrics scraping and the API docs (OpenAPI and AsyncAPI).
PUBLIC_PATH_PREFIXES = ("/health", "/metrics", "/schema", "/asyncapi.json", "/asyncapi")

#: Probes never rate limited (and given no RateLimit-* headers): health checks and the metrics scrape.
EXEMPT_PATHS = frozenset({"/health", "/health/", "/health/live", "/health/ready", "/metrics", "/metrics/"})

#: Route handler ``opt`` for endpoints that authorise requests themselves (signed webhooks, a static page,
#: a stream opened with a ticket): a presented key is still verified (401 if invalid) and sets the
#: principal, but a request without a key goes on anonymously, rate limited per client IP, or per source
#: when the route has a ``{source}`` path parameter and the method is POST (a webhook delivery).
OPTIONAL_AUTH: dict[str, Any] = {"auth": "optional"}


class AuthCache:
    """Verified keys by hash, each for ``ttl`` seconds."""

    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        self._entries: dict[str, tuple[schemas.Principal, float]] = {}

    def get(self, digest: str) -> schemas.Principal | None:
        entry = self._entries.get(digest)
        if entry is None:
            return None
        principal, expires = entry
        if expires < time.monotonic():
            del self._entries[digest]
            return None
        return principal

    def put(self, digest: str, principal: schemas.Principal) -> None:
        if self.ttl > 0:
            self._entries[digest] = (principal, time.monotonic() + self.ttl)

    def drop_key(self, key_id: Any) -> None:
        """Forget a revoked key."""
        for digest, (principal, _) in list(self._entries.items()):
            if principal.key_id == key_id:
                del self._entries[digest]


#: How long a leased block of requests stays usable in the process that leased it.
LEASE_SECONDS = 1.0
#: Identities with a lease kept before expired ones are dropped.
_MAX_LEASES = 10_000


@dataclass(frozen=True, slots=True)
class RateLimitDecision:
    """The outcome of one rate-limit check."""

    allowed: bool
    limit: int
    remaining: int
    reset_seconds: float

    def headers(self) -> list[tuple[bytes, bytes]]:
        """``RateLimit-*`` headers (IETF draft), plus ``Retry-After`` when refused."""
        reset = str(max(0, math.ceil(self.reset_seconds))).encode()
        out = [
            (b"ratelimit-limit", str(self.limit).encode()),
            (b"ratelimit-remaining", str(self.remaining).encode()),
            (b"ratelimit-reset", reset),
        ]
        if not self.allowed:
            out.append((b"retry-after", str(max(1, math.ceil(self.reset_seconds))).encode()))
        return out


class _Lease:
    """Requests of one identity this process may still admit without asking Redis."""

    __slots__ = ("block", "count", "expires", "reset_at", "tokens")

    def __init__(self, tokens: int, block: int, count: int, expires: float, reset_at: float) -> None:
        self.tokens, self.block, self.count, self.expires, self.reset_at = tokens, block, count, expires, reset_at


class SlidingWindowLimiter:
    """A sliding-window log in a Redis sorted set, with small blocks of it leased to each process.

    The script reads the server clock so several app processes agree on time, and counts every leased
    request in the window at once, so no identity is ever admitted more than ``limit`` times a window
    across all processes. A process leases one request at first and doubles the block (up to
    ``lease_max``) while an identity uses its blocks up within :data:`LEASE_SECONDS`, so a busy key costs
    one Redis call per block while a slow one is counted exactly. Leased requests a process does not use
    within :data:`LEASE_SECONDS` expire unused but stay counted: a busy key can be refused early by up to
    ``lease_max - 1`` requests per process. Near the limit a lease is at most a quarter of what is left
    (down to one request), so the last requests of a window are exact. ``lease_max=1`` is a Redis call
    per request.
    """

    _SCRIPT = """
    local t = redis.call('TIME')
    local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
    local window = tonumber(ARGV[1])
    local limit = tonumber(ARGV[2])
    redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
    local count = redis.call('ZCARD', KEYS[1])
    local granted = 0
    if count < limit then
        granted = math.min(tonumber(ARGV[4]), math.max(1, math.floor((limit - count) / 4)))
        local members = {}
        for i = 1, granted do
            members[#members + 1] = now
            members[#members + 1] = ARGV[3] .. '-' .. i
        end
        redis.call('ZADD', KEYS[1], unpack(members))
        redis.call('PEXPIRE', KEYS[1], window)
        count = count + granted
    end
    local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
    local reset = window
    if oldest[2] then reset = tonumber(oldest[2]) + window - now end
    return {granted, count, reset}
    """

    def __init__(self, redis: Redis, *, limit: int, window_seconds: float, lease_max: int = 16) -> None:
        self.limit = limit
        self.window_ms = int(window_seconds * 1000)
        self.lease_max = lease_max
        self._lease_seconds = min(LEASE_SECONDS, window_seconds)
        self._script = redis.register_script(self._SCRIPT)
        self._counter = 0
        self._leases: dict[tuple[str, int], _Lease] = {}

    async def hit(self, identity: str, limit: int | None = None) -> RateLimitDecision:
        """Count one request for ``identity`` unless it is over ``limit`` (default: the limiter's)."""
        limit = self.limit if limit is None else limit
        now = time.monotonic()
        lease = self._leases.get((identity, limit))
        if lease is not None and lease.tokens > 0 and now < lease.expires:
            lease.tokens -= 1
            return RateLimitDecision(True, limit, max(0, limit - lease.count + lease.tokens), lease.reset_at - now)
        # Used up in time: the identity is busy, ask for twice as many next time; otherwise one.
        busy = lease is not None and lease.tokens == 0 and now < lease.expires
        want = min(self.lease_max, lease.block * 2) if busy and lease is not None else 1
        self._counter += 1
        granted, count, reset_ms = await self._script(
            keys=[f"ratelimit:{identity}"], args=[self.window_ms, limit, f"{id(self)}-{self._counter}", want]
        )
        granted, count, reset = int(granted), int(count), int(reset_ms) / 1000
        if len(self._leases) > _MAX_LEASES:
            self._leases = {key: kept for key, kept in self._leases.items() if kept.expires > now}
        self._leases[(identity, limit)] = _Lease(
            max(0, granted - 1), max(1, granted), count, now + self._lease_seconds, now + reset
        )
        return RateLimitDecision(
            allowed=granted > 0,
            limit=limit,
            remaining=max(0, limit - count + max(0, granted - 1)),
            reset_seconds=reset,
        )


def _webhook_source(scope: Scope) -> str | None:
    """The source of a key-less webhook delivery (an optional-auth POST with a ``{source}`` parameter)."""
    if scope.get("method") != "POST":
        return None
    source = scope.get("path_params", {}).get("source")
    return source[:255] if isinstance(source, str) and source else None


def _auth_is_optional(scope: Scope) -> bool:
    handler = scope.get("route_handler")
    return handler is not None and bool(handler.opt.get("auth") == OPTIONAL_AUTH["auth"])


def _presented_key(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == b"x-api-key":
            return value.decode("latin-1").strip() or None
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token.strip()
    return None


@functools.lru_cache(maxsize=8)
def _client_address(trusted_proxies: str) -> ClientAddress:
    """The client-address resolver of a trusted-proxy list, parsed once per distinct setting."""
    return ClientAddress(trusted_proxies)


class SecurityMiddleware:
    """Authenticates the API key and applies the rate limits (see the module docstring)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        if path in EXEMPT_PATHS:
            await self.app(scope, receive, send)
            return
        state = scope["app"].state
        settings: SecuritySettings = state.runtime.settings.security
        database: Database = state.runtime.database
        limiter: SlidingWindowLimiter | None = state.rate_limiter if settings.rate_limit_enabled else None
        client_ip = _client_address(settings.trusted_proxies)(scope)
        scope.setdefault("state", {})["client_ip"] = client_ip
        audit = _Auditor(database, scope, client_ip)

        if path.startswith(PUBLIC_PATH_PREFIXES):
            decision = await self._limit(limiter, f"ip:{client_ip}", audit, None)
            await self.app(scope, receive, _with_headers(send, decision))
            return

        key = _presented_key(scope)
        if key is None and _auth_is_optional(scope):
            source = _webhook_source(scope)
            if source is not None:
                # Signed deliveries share their source's bucket, wherever the sender's addresses are.
                identity, limit = f"source:{source}", settings.rate_limit_webhook_requests
            else:
                identity, limit = f"ip:{client_ip}", None
            decision = await self._limit(limiter, identity, audit, None, limit)
            await self.app(scope, receive, _with_headers(send, decision))
            return
        principal = await self._authenticate(key, state.auth_cache, database) if key else None
        if principal is None:
            # Failed attempts count against the client IP, so guessing keys is rate limited too.
            decision = await self._limit(limiter, f"ip:{client_ip}", audit, None)
            await audit("auth.missing" if key is None else "auth.failed", "denied")
            budget = {k.decode().title(): v.decode() for k, v in decision.headers()} if decision else {}
            raise NotAuthorizedException(
                "A valid API key is required in X-API-Key or Authorization: Bearer."
                if key is None
                else "The API key is invalid, expired or revoked.",
                headers={"WWW-Authenticate": 'Bearer realm="omninode-bridge"', **budget},
            )
        scope["user"] = principal
        scope["auth"] = principal.key_id
        structlog.contextvars.bind_contextvars(key_id=str(principal.key_id))
        decision = await self._limit(limiter, f"key:{principal.key_id}", audit, principal)
        await self.app(scope, receive, _with_headers(send, decision))

    @staticmethod
    async def _authenticate(key: str, cache: AuthCache, database: Database) -> schemas.Principal | None:
        digest = hash_key(key)
        principal = cache.get(digest)
        if principal is not None:
            return principal
        async with database.unit_of_work() as uow:
            principal = await ApiKeyService(uow).verify(key)
        if principal is not None:
            cache.put(digest, principal)
        return principal

    @staticmethod
    async def _limit(
        limiter: SlidingWindowLimiter | None,
        identity: str,
        audit: _Auditor,
        principal: schemas.Principal | None,
        limit: int | None = None,
    ) -> RateLimitDecision | None:
        if limiter is None:
            return None
        try:
            decision = await limiter.hit(identity, limit)
        except (RedisError, OSError) as exc:
            # Fail open: an unreachable Redis must not take the whole API down with it.
            log.warning("rate limiter unavailable; request allowed", error=str(exc))
            return None
        if not decision.allowed:
            await audit("rate_limit.hit", "denied", key_id=principal.key_id if principal else None)
            retry = max(1, math.ceil(decision.reset_seconds))
            raise ProblemError(
                429,
                f"Rate limit of {decision.limit} requests per window exceeded; retry in {retry} s.",
                headers={k.decode().title(): v.decode() for k, v in decision.headers()},
            )
        return decision


class UnmatchedRouteLimits:
    """Rate limits for requests no route matched (unknown paths, 405s, path parameters of the wrong type).

    Litestar answers those before any route middleware runs, so :class:`SecurityMiddleware` never sees
    them. Wrapped around the whole app, this counts them per client IP like other unauthenticated requests
    and adds the ``RateLimit-*`` headers (or answers 429). Matched requests pass through untouched: the
    check happens at their response start, where a matched route has set ``route_handler``.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await self.app(scope, receive, send)
            return
        refused = False

        async def send_limited(message: Message) -> None:
            nonlocal refused
            if refused:
                return  # the body of the response the 429 replaced
            if message["type"] == "http.response.start" and "route_handler" not in scope:
                try:
                    decision = await self._hit(scope)
                except ProblemError as exc:
                    refused = True
                    await _send_problem(send, scope, exc)
                    return
                if decision is not None:
                    message["headers"] = [*message.get("headers", []), *decision.headers()]
            await send(message)

        await self.app(scope, receive, send_limited)

    async def _hit(self, scope: Scope) -> RateLimitDecision | None:
        state = scope["app"].state
        settings: SecuritySettings = state.runtime.settings.security
        limiter: SlidingWindowLimiter | None = state.rate_limiter if settings.rate_limit_enabled else None
        client_ip = _client_address(settings.trusted_proxies)(scope)
        audit = _Auditor(state.runtime.database, scope, client_ip)
        return await SecurityMiddleware._limit(limiter, f"ip:{client_ip}", audit, None)


async def _send_problem(send: Send, scope: Scope, exc: ProblemError) -> None:
    body = msgspec.json.encode(
        {
            "type": exc.type_,
            "title": exc.title,
            "status": exc.status_code,
            "detail": exc.detail,
            "correlation_id": scope.get("state", {}).get("correlation_id"),
        }
    )
    headers = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in (exc.headers or {}).items()]
    await send(
        {
            "type": "http.response.start",
            "status": exc.status_code,
            "headers": [
                (b"content-type", b"application/problem+json"),
                (b"content-length", str(len(body)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body, "more_body": False})


class _Auditor:
    """Writes access decisions with the request's context."""

    def __init__(self, database: Database, scope: Scope, client_ip: str) -> None:
        self.database = database
        self.scope = scope
        self.client_ip = client_ip

    async def __call__(self, action: str, outcome: str, **fields: Any) -> None:
        await record_audit(
            self.database,
            action,
            outcome,
            client_ip=self.client_ip,
            method=self.scope.get("method"),
            path=self.scope["path"][:2048],
            correlation_id=self.scope.get("state", {}).get("correlation_id"),
            **fields,
        )


def _with_headers(send: Send, decision: RateLimitDecision | None) -> Send:
    if decision is None:
        return send
    extra = decision.headers()

    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":
            message["headers"] = [*message.get("headers", []), *extra]
        await send(message)

    return wrapped


def principal_of(connection: ASGIConnection[Any, Any, Any, Any]) -> schemas.Principal:
    """The authenticated principal of a request (set by :class:`SecurityMiddleware`)."""
    user = connection.scope.get("user")
    if not isinstance(user, schemas.Principal):
        raise NotAuthorizedException("A valid API key is required.")
    return user


def principal_or_none(connection: ASGIConnection[Any, Any, Any, Any]) -> schemas.Principal | None:
    """The principal of a request to an :data:`OPTIONAL_AUTH` endpoint, or None when no key was presented."""
    user = connection.scope.get("user")
    return user if isinstance(user, schemas.Principal) else None


def require_scope(
    scope_name: str,
) -> Callable[[ASGIConnection[Any, Any, Any, Any], BaseRouteHandler], Awaitable[None]]:
    """A Litestar guard admitting keys with ``scope_name`` (or ``admin``); others get an audited 403."""

    async def guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
        if not principal_of(connection).has_scope(scope_name):
            await _forbid(connection, {"required_scope": scope_name}, f"This API key lacks the '{scope_name}' scope.")

    return guard


async def require_namespace(connection: ASGIConnection[Any, Any, Any, Any], namespace: str) -> None:
    """Admit the caller to ``namespace`` or raise an audited 403 (keys may be restricted to namespaces).

    Raises:
        PermissionDeniedException: The key is restricted to other namespaces.
    """
    if not principal_of(connection).may_use_namespace(namespace):
        await _forbid(connection, {"namespace": namespace}, f"This API key may not use the namespace '{namespace}'.")


async def _forbid(connection: ASGIConnection[Any, Any, Any, Any], detail: dict[str, str], message: str) -> None:
    """Audit a denied access decision, then raise the 403."""
    runtime = connection.app.state.runtime
    client_ip = connection.scope.get("state", {}).get("client_ip", "unknown")  # resolved by the middleware
    await _Auditor(runtime.database, connection.scope, client_ip)(
        "auth.forbidden", "denied", key_id=principal_of(connection).key_id, detail=detail
    )
    raise PermissionDeniedException(message)
