"""Component health: the one shape ``/health`` reports, for the app's connections and for modules.

A module may say how it is doing through ``Module.health`` (a :data:`HealthProbe`); the platform's
``/health`` runs every module's probe beside its own checks of the database, Kafka and Redis.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Literal

import msgspec

__all__ = ["ComponentHealth", "ComponentStatus", "HealthProbe"]

ComponentStatus = Literal["up", "down", "degraded"]


class ComponentHealth(msgspec.Struct):
    """One component's health.

    Attributes:
        status: ``up``, ``degraded`` (works, with a limitation named in ``detail``) or ``down``.
        latency_ms: How long the check took, where it measured one.
        detail: Why it is not ``up`` (never a secret, a host or a driver's message).
    """

    status: ComponentStatus
    latency_ms: float | None = None
    detail: str | None = None


#: A module's health check: cheap (it runs on every ``/health`` request, bounded by a timeout there) and
#: never raising for an expected condition (a raised exception is reported as ``down``).
HealthProbe = Callable[[], Awaitable[ComponentHealth]]
