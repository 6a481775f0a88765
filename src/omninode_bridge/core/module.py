"""What a feature module hands to the composition root, and the runtime it gets back."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any

from faststream.kafka import KafkaBroker, KafkaRouter
from litestar.di import Provide
from litestar.types import ControllerRouterHandler
from redis.asyncio import Redis

from omninode_bridge.core.db import Database
from omninode_bridge.core.events import EventPublisher, TopicCatalog
from omninode_bridge.settings import Settings

__all__ = ["Module", "Runtime"]


@dataclass(slots=True)
class Runtime:
    """The process-wide resources a running app owns (kept in ``app.state.runtime``).

    Attributes:
        settings: The settings the app was created with.
        database: Engine, unit of work and breaker.
        redis: The Redis client.
        broker: The FastStream Kafka broker (consumers run in this process).
        catalog: The topic catalog from ``contracts/``.
        publisher: Writes events to the outbox.
        started_at: ``time.time()`` when the app started, for uptime.
    """

    settings: Settings
    database: Database
    redis: Redis
    broker: KafkaBroker
    catalog: TopicCatalog
    publisher: EventPublisher
    started_at: float
    extras: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Module:
    """A feature module's public registration.

    Attributes:
        name: Module name; also the API-key scope that grants access to its endpoints.
        route_handlers: Litestar controllers and routers.
        kafka_routers: Factories of FastStream routers; each gets the catalog, which binds its subscribers
            to topics, consumer groups and retry budgets.
        publishes: Topics the module publishes to; checked against the catalog at start-up.
        dependencies: Litestar dependency providers the module adds.
        lifespans: Context managers entered after the platform resources are up (background tasks).
        checks: Run by ``create_app`` before anything connects, with the settings: validate contracts so a
            bad one stops the app at once, not in the middle of its start-up.
    """

    name: str
    route_handlers: Sequence[ControllerRouterHandler] = ()
    kafka_routers: Sequence[Callable[[TopicCatalog], KafkaRouter]] = ()
    publishes: Sequence[str] = ()
    dependencies: Mapping[str, Provide] = field(default_factory=dict)
    lifespans: Sequence[Callable[[Runtime], AbstractAsyncContextManager[None]]] = ()
    checks: Sequence[Callable[[Settings], None]] = ()
