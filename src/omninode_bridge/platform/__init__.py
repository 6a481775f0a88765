"""The platform module: health probes, API keys, the audit log, authentication and rate limits.

Other modules use :func:`require_scope` and :func:`principal_of` to protect their endpoints, and
:meth:`Actor.from_request` to say who did something in the audit log.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping

import structlog
from litestar.di import Provide

from omninode_bridge.core.db import Database
from omninode_bridge.core.health import HealthProbe
from omninode_bridge.core.module import Module, Resources
from omninode_bridge.core.settings import SecuritySettings
from omninode_bridge.platform.controllers import (
    API_KEY_SECURITY,
    AUTH_RESPONSES,
    PUBLIC_RESPONSES,
    AdminController,
    HealthController,
)
from omninode_bridge.platform.identity import Actor, principal_of, principal_or_none
from omninode_bridge.platform.schemas import Principal
from omninode_bridge.platform.security import (
    OPTIONAL_AUTH,
    PUBLIC_PATH_PREFIXES,
    AuthCache,
    SecurityMiddleware,
    SlidingWindowLimiter,
    UnmatchedRouteLimits,
    require_namespace,
    require_scope,
)
from omninode_bridge.platform.services import ApiKeyService, AuditService, parse_key_specs, record_audit
from omninode_bridge.platform.state import PlatformState, attach_platform_state, platform_state

__all__ = [
    "API_KEY_SECURITY",
    "AUTH_RESPONSES",
    "OPTIONAL_AUTH",
    "PUBLIC_PATH_PREFIXES",
    "PUBLIC_RESPONSES",
    "Actor",
    "ApiKeyService",
    "AuditService",
    "AuthCache",
    "PlatformState",
    "Principal",
    "SecurityMiddleware",
    "SlidingWindowLimiter",
    "UnmatchedRouteLimits",
    "attach_platform_state",
    "build_module",
    "build_state",
    "parse_key_specs",
    "platform_state",
    "principal_of",
    "principal_or_none",
    "record_audit",
    "require_namespace",
    "require_scope",
]

log = structlog.get_logger(__name__)


def build_state(
    security: SecuritySettings, database: Database, module_health: Mapping[str, HealthProbe] | None = None
) -> PlatformState:
    """The platform state of a new app (nothing connects; the lifespan of :func:`build_module` fills it).

    Args:
        security: The security settings group.
        database: The app's database.
        module_health: The feature modules' health checks by module name, reported by ``/health``.
    """
    return PlatformState(
        security=security,
        database=database,
        auth_cache=AuthCache(security.auth_cache_seconds),
        module_health=dict(module_health or {}),
    )


def build_module(state: PlatformState) -> Module:
    """The platform module over ``state``: its endpoints, their dependencies and its lifespan.

    The lifespan seeds the ``OMNINODE_API_KEYS`` keys and sets the rate limiter and the resources the
    health probes check.
    """

    @contextlib.asynccontextmanager
    async def lifespan(resources: Resources) -> AsyncIterator[None]:
        security = state.security
        state.resources.set(resources)
        state.rate_limiter.set(
            SlidingWindowLimiter(
                resources.redis,
                limit=security.rate_limit_requests,
                window_seconds=security.rate_limit_window_seconds,
                lease_max=security.rate_limit_lease,
            )
        )
        await _seed_keys(state.database, security.api_keys)
        yield  # the slots stay set: requests still in flight during shutdown are served

    return Module(
        name="platform",
        route_handlers=[HealthController, AdminController],
        dependencies={
            "resources": Provide(state.resources.get, sync_to_thread=False),
            "auth_cache": Provide(lambda: state.auth_cache, sync_to_thread=False),
            "module_health": Provide(lambda: state.module_health, sync_to_thread=False),
        },
        lifespans=[lifespan],
    )


async def _seed_keys(database: Database, api_keys: str) -> None:
    specs = parse_key_specs(api_keys)
    if not specs:
        return
    async with database.unit_of_work() as uow:
        created = await ApiKeyService(uow).seed(specs)
    if created:
        log.info("seeded API keys", count=created)
