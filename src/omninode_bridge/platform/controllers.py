"""Platform endpoints: health probes and the admin API (keys and audit log)."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from typing import Annotated, Any, Literal

from litestar import Controller, Request, Response, delete, get, post
from litestar.di import NamedDependency
from litestar.exceptions import NotFoundException
from litestar.openapi import ResponseSpec
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter

from omninode_bridge import __version__
from omninode_bridge.core.db import UnitOfWork
from omninode_bridge.core.health import HealthProbe
from omninode_bridge.core.inputs import AwareDatetime, check_datetime_range, param, text
from omninode_bridge.core.module import Resources
from omninode_bridge.core.openapi import documented, error_responses
from omninode_bridge.core.paging import BigintCursorQuery, bigint_cursor
from omninode_bridge.core.safe_errors import describe_error
from omninode_bridge.platform import schemas
from omninode_bridge.platform.identity import principal_of
from omninode_bridge.platform.security import AuthCache, require_scope
from omninode_bridge.platform.services import ApiKeyService, AuditService

__all__ = ["API_KEY_SECURITY", "AUTH_RESPONSES", "PUBLIC_RESPONSES", "AdminController", "HealthController"]

_FILTER = text(max_length=100)


#: OpenAPI security requirement of every protected controller (either header works).
API_KEY_SECURITY: list[dict[str, list[str]]] = [{"ApiKeyHeader": []}, {"BearerAuth": []}]

#: The error responses of an operation that checks an API key (see :func:`core.openapi.error_responses`
#: for operations with statuses of their own).
AUTH_RESPONSES: dict[int, ResponseSpec] = error_responses()
#: The error responses of a public operation (no key asked for; still rate limited per client IP).
PUBLIC_RESPONSES: dict[int, ResponseSpec] = error_responses(key=False)


class HealthController(Controller):
    """Liveness, readiness and per-component health. No key needed."""

    path = "/health"
    tags = ["platform"]

    @get("/", operation_id="getHealth", summary="Overall and per-component health",
         responses=error_responses({503: documented(schemas.Health, "Unhealthy: the database is down")},
                                   key=False))  # fmt: skip
    async def health(
        self, resources: NamedDependency[Resources], module_health: NamedDependency[Mapping[str, HealthProbe]]
    ) -> Response[schemas.Health]:
        """Healthy when every component is up; degraded when Kafka or Redis is down; unhealthy (503) when
        the database is down. Modules that check their own health are listed by name beside them: a module
        says what it cannot serve without making the whole service degraded."""
        checks, modules = await asyncio.gather(_check_components(resources), _check_modules(module_health))
        status: Literal["healthy", "degraded", "unhealthy"]
        if checks["database"].status != "up":
            status = "unhealthy"
        elif any(c.status != "up" for c in checks.values()):
            status = "degraded"
        else:
            status = "healthy"
        body = schemas.Health(
            status=status,
            components={**modules, **checks},
            version=__version__,
            uptime_seconds=round(time.time() - resources.started_at, 3),
        )
        return Response(body, status_code=503 if status == "unhealthy" else 200)

    @get("/live", operation_id="getLiveness", summary="The process is up", responses=PUBLIC_RESPONSES)
    async def live(self) -> dict[str, str]:
        """Always 200 while the process serves requests."""
        return {"status": "alive"}

    @get("/ready", operation_id="getReadiness", summary="The service can serve: database and broker reachable",
         responses=error_responses({503: documented(dict[str, Any], "Not ready: see components")},
                                   key=False))  # fmt: skip
    async def ready(self, resources: NamedDependency[Resources]) -> Response[dict[str, Any]]:
        """200 when the database and the broker answer, else 503."""
        checks = await _check_components(resources, include_redis=False)
        ready = all(c.status == "up" for c in checks.values())
        body = {"status": "ready" if ready else "not_ready", "components": checks}
        return Response(body, status_code=200 if ready else 503)


async def _timed(probe: Callable[[], Awaitable[object]], limit_seconds: float = 2.0) -> schemas.ComponentHealth:
    started = time.perf_counter()
    try:
        async with asyncio.timeout(limit_seconds):
            await probe()
    except Exception as exc:
        # A classification only: a driver's message can name hosts, users or statements.
        return schemas.ComponentHealth(status="down", detail=describe_error(exc)[:200])
    return schemas.ComponentHealth(status="up", latency_ms=round((time.perf_counter() - started) * 1000, 2))


async def _check_modules(
    probes: Mapping[str, HealthProbe], limit_seconds: float = 2.0
) -> dict[str, schemas.ComponentHealth]:
    async def one(probe: HealthProbe) -> schemas.ComponentHealth:
        started = time.perf_counter()
        try:
            async with asyncio.timeout(limit_seconds):
                result = await probe()
        except Exception as exc:
            return schemas.ComponentHealth(status="down", detail=describe_error(exc)[:200])
        if result.latency_ms is None:
            result.latency_ms = round((time.perf_counter() - started) * 1000, 2)
        return result

    results = await asyncio.gather(*(one(p) for p in probes.values()))
    return dict(zip(probes, results, strict=True))


async def _check_components(
    resources: NamedDependency[Resources], *, include_redis: bool = True
) -> dict[str, schemas.ComponentHealth]:
    async def kafka() -> None:
        if not await resources.broker.ping(timeout=2.0):
            raise ConnectionError("broker did not answer")

    async def redis() -> None:
        await resources.redis.ping()

    probes: dict[str, Callable[[], Awaitable[object]]] = {"database": resources.database.ping, "kafka": kafka}
    if include_redis:
        probes["redis"] = redis
    results = await asyncio.gather(*(_timed(p) for p in probes.values()))
    checks = dict(zip(probes, results, strict=True))
    breaker = resources.database.breaker.state.name.lower()
    if breaker != "closed" and checks["database"].status == "up":
        checks["database"] = schemas.ComponentHealth(
            status="degraded", latency_ms=checks["database"].latency_ms, detail=f"circuit breaker {breaker}"
        )
    return checks


class AdminController(Controller):
    """API keys and the audit log. Requires the ``admin`` scope."""

    path = "/admin"
    tags = ["admin"]
    security = API_KEY_SECURITY
    opt = require_scope("admin")

    @get("/api-keys", operation_id="listApiKeys", summary="List API keys", responses=AUTH_RESPONSES)
    async def list_keys(
        self, uow: NamedDependency[UnitOfWork], include_revoked: FromQuery[bool] = False
    ) -> list[schemas.ApiKey]:
        """Every key (without the key itself), newest first."""
        return await ApiKeyService(uow).list(include_revoked=include_revoked)

    @post(
        "/api-keys",
        operation_id="createApiKey",
        summary="Create an API key (shown once)",
        responses=error_responses(body=True),
    )
    async def create_key(
        self,
        request: Request[Any, Any, Any],
        uow: NamedDependency[UnitOfWork],
        data: JSONBody[schemas.ApiKeyCreate],
    ) -> schemas.ApiKeyCreated:
        """Create a key. The response holds the plain key; it is never shown again."""
        check_datetime_range(data.expires_at, "expires_at")
        return await ApiKeyService(uow).create(data, actor=principal_of(request).key_id)

    @delete(
        "/api-keys/{key_id:uuid}",
        operation_id="revokeApiKey",
        summary="Revoke an API key",
        status_code=200,
        responses=error_responses({404: "No API key with this id"}),
    )
    async def revoke_key(
        self,
        request: Request[Any, Any, Any],
        auth_cache: NamedDependency[AuthCache],
        uow: NamedDependency[UnitOfWork],
        key_id: FromPath[uuid.UUID],
    ) -> schemas.ApiKey:
        """Revoke a key at once (idempotent). Other keys keep working, so keys rotate without downtime."""
        revoked = await ApiKeyService(uow).revoke(key_id, actor=principal_of(request).key_id)
        if revoked is None:
            raise NotFoundException(f"No API key with id {key_id}.")
        auth_cache.drop_key(key_id)
        return revoked

    @get(
        "/audit",
        operation_id="listAuditEntries",
        summary="Page through the audit log",
        responses=AUTH_RESPONSES,
    )
    async def audit(
        self,
        uow: NamedDependency[UnitOfWork],
        cursor: BigintCursorQuery = None,
        limit: Annotated[int, QueryParameter(ge=1, le=500)] = 50,
        action: Annotated[str | None, param(_FILTER)] = None,
        outcome: Annotated[str | None, param(_FILTER)] = None,
        key_id: FromQuery[uuid.UUID | None] = None,
        since: Annotated[dt.datetime | None, param(AwareDatetime)] = None,
        until: Annotated[dt.datetime | None, param(AwareDatetime)] = None,
    ) -> schemas.AuditPage:
        """Entries newest first, filtered by action, outcome, key and time."""
        return await AuditService(uow).page(
            limit=limit,
            cursor=bigint_cursor(cursor),
            action=action,
            outcome=outcome,
            key_id=key_id,
            since=since,
            until=until,
        )
