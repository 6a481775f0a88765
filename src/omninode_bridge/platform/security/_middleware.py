"""The ASGI middlewares that authenticate API keys and apply the rate limits (see the package docstring)."""

from __future__ import annotations

import math

import msgspec
import structlog
from litestar.enums import ScopeType
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException
from litestar.types import ASGIApp, Message, Receive, Scope, Send
from redis.exceptions import RedisError

from omninode_bridge.core.db import Database
from omninode_bridge.core.errors import ProblemError
from omninode_bridge.platform import schemas
from omninode_bridge.platform.security._audit import Auditor
from omninode_bridge.platform.security._cache import AuthCache
from omninode_bridge.platform.security._guards import REQUIRED_SCOPE_OPT
from omninode_bridge.platform.security._limits import RateLimitDecision, SlidingWindowLimiter
from omninode_bridge.platform.security._request import (
    EXEMPT_PATHS,
    PUBLIC_PATH_PREFIXES,
    auth_is_optional,
    client_address,
    presented_key,
    webhook_source,
)
from omninode_bridge.platform.services import ApiKeyService, hash_key
from omninode_bridge.platform.state import platform_state

log = structlog.get_logger(__name__)


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
        state = platform_state(scope["app"])
        settings = state.security
        database = state.database
        limiter = state.rate_limiter.get() if settings.rate_limit_enabled else None
        client_ip = client_address(settings.trusted_proxies)(scope)
        scope.setdefault("state", {})["client_ip"] = client_ip
        audit = Auditor(database, scope)

        if path.startswith(PUBLIC_PATH_PREFIXES):
            decision = await self._limit(limiter, f"ip:{client_ip}", audit, None)
            await self.app(scope, receive, _with_headers(send, decision))
            return

        key = presented_key(scope)
        if key is None and auth_is_optional(scope) and _required_scope(scope) is None:
            source = webhook_source(scope)
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
        required = _required_scope(scope)
        if required is not None and not principal.has_scope(required):
            await audit("auth.forbidden", "denied", detail={"required_scope": required})
            budget = {k.decode().title(): v.decode() for k, v in decision.headers()} if decision else {}
            raise PermissionDeniedException(f"This API key lacks the '{required}' scope.", headers=budget or None)
        await self.app(scope, receive, _with_headers(send, decision))

    @staticmethod
    async def _authenticate(key: str, cache: AuthCache, database: Database) -> schemas.Principal | None:
        async def verify() -> schemas.Principal | None:
            async with database.unit_of_work() as uow:
                return await ApiKeyService(uow).verify(key)

        return await cache.principal(hash_key(key), verify)

    @staticmethod
    async def _limit(
        limiter: SlidingWindowLimiter | None,
        identity: str,
        audit: Auditor,
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


def _required_scope(scope: Scope) -> str | None:
    handler = scope.get("route_handler")
    return None if handler is None else handler.opt.get(REQUIRED_SCOPE_OPT)


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
        state = platform_state(scope["app"])
        settings = state.security
        limiter = state.rate_limiter.get() if settings.rate_limit_enabled else None
        client_ip = client_address(settings.trusted_proxies)(scope)
        scope.setdefault("state", {})["client_ip"] = client_ip
        audit = Auditor(state.database, scope)
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


def _with_headers(send: Send, decision: RateLimitDecision | None) -> Send:
    if decision is None:
        return send
    extra = decision.headers()

    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":
            message["headers"] = [*message.get("headers", []), *extra]
        await send(message)

    return wrapped
