"""The platform's per-app state: what its middleware and endpoints share, kept in ``app.state``.

Middleware runs outside Litestar's dependency injection, so it reads this one typed object through
:func:`platform_state`; endpoints get the same values through ``Provide``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from litestar import Litestar

from omninode_bridge.core.db import Database
from omninode_bridge.core.health import HealthProbe
from omninode_bridge.core.module import NotStartedError, Resources, Started
from omninode_bridge.core.settings import SecuritySettings

if TYPE_CHECKING:
    from omninode_bridge.platform.security import AuthCache, SlidingWindowLimiter

__all__ = ["PlatformState", "attach_platform_state", "platform_state"]

_KEY = "platform"


@dataclass(slots=True)
class PlatformState:
    """The platform's collaborators in one app.

    Attributes:
        security: The security settings group.
        database: Where keys are verified and access decisions audited.
        auth_cache: Verified keys, cached in-process.
        rate_limiter: The Redis sliding-window limiter (set when the app starts).
        resources: The app's resources, for the health probes (set when the app starts).
        module_health: The feature modules' own health checks (``Module.health``) by module name.
    """

    security: SecuritySettings
    database: Database
    auth_cache: AuthCache
    rate_limiter: Started[SlidingWindowLimiter] = field(default_factory=lambda: Started("the rate limiter"))
    resources: Started[Resources] = field(default_factory=lambda: Started("the app's resources"))
    module_health: Mapping[str, HealthProbe] = field(default_factory=dict)


def attach_platform_state(app: Litestar, state: PlatformState) -> None:
    """Make ``state`` the platform state of ``app`` (done once, by ``create_app``)."""
    app.state[_KEY] = state


def platform_state(app: Litestar) -> PlatformState:
    """The platform state of ``app``.

    Raises:
        NotStartedError: The app was not built by ``create_app``.
    """
    state = app.state.get(_KEY)
    if not isinstance(state, PlatformState):
        raise NotStartedError("the app has no platform state: build it with create_app")
    return state
