"""What a feature module hands to the composition root, and the resources it gets back."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from faststream.kafka import KafkaBroker, KafkaRouter
from litestar.di import Provide
from litestar.types import ControllerRouterHandler
from redis.asyncio import Redis

from omninode_bridge.core.db import Database
from omninode_bridge.core.events import EventPublisher, TopicCatalog
from omninode_bridge.core.health import HealthProbe

__all__ = ["Module", "NotStartedError", "Resources", "Started", "background", "raise_if_stopping", "start_order"]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Resources:
    """The process-wide resources a running app owns, handed to each module's lifespans.

    Attributes:
        database: Engine, unit of work and breaker.
        redis: The Redis client.
        broker: The FastStream Kafka broker (consumers run in this process).
        catalog: The topic catalog from ``contracts/``.
        publisher: Writes events to the outbox.
        started_at: ``time.time()`` when the app started, for uptime.
    """

    database: Database
    redis: Redis
    broker: KafkaBroker
    catalog: TopicCatalog
    publisher: EventPublisher
    started_at: float


class NotStartedError(RuntimeError):
    """A module's state was read before its lifespan filled it (or after it ended)."""


class Started(Generic[T]):
    """One value of a module's state that its lifespan sets once the app runs.

    A module's factory builds its state object (nothing connects then) and captures it in its
    dependency providers, consumers and lifespan; the lifespan sets each :class:`Started` slot, and
    reading one before is a :class:`NotStartedError` naming it.
    """

    __slots__ = ("_name", "_value")

    def __init__(self, name: str) -> None:
        self._name = name
        self._value: T | None = None

    def set(self, value: T | None) -> None:
        """Fill the slot (None empties it again, when the lifespan ends)."""
        self._value = value

    def get(self) -> T:
        """The value.

        Raises:
            NotStartedError: The lifespan has not set it.
        """
        if self._value is None:
            raise NotStartedError(f"{self._name} is not available: the app has not started")
        return self._value


@dataclass(frozen=True, slots=True)
class Module:
    """A feature module's public registration, built by the module's ``build_module`` factory.

    Attributes:
        name: Module name; also the API-key scope that grants access to its endpoints.
        requires: Names of the modules whose lifespans must have started before this one's.
        route_handlers: Litestar controllers and routers.
        kafka_routers: Factories of FastStream routers; each gets the catalog, which binds its subscribers
            to topics, consumer groups and retry budgets.
        publishes: Topics the module publishes to; checked against the catalog at start-up.
        dependencies: Litestar dependency providers the module adds.
        lifespans: Context managers entered after the platform resources are up (background tasks).
        checks: Run by ``create_app`` before anything connects (closures over the module's own settings):
            validate contracts so a bad one stops the app at once, not in the middle of its start-up.
        health: The module's own health check, reported by ``/health`` under the module's name (e.g. a
            module that runs but cannot serve everything says ``degraded`` and why). None: not reported.
    """

    name: str
    requires: Sequence[str] = ()
    route_handlers: Sequence[ControllerRouterHandler] = ()
    kafka_routers: Sequence[Callable[[TopicCatalog], KafkaRouter]] = ()
    publishes: Sequence[str] = ()
    dependencies: Mapping[str, Provide] = field(default_factory=dict)
    lifespans: Sequence[Callable[[Resources], AbstractAsyncContextManager[None]]] = ()
    checks: Sequence[Callable[[], None]] = ()
    health: HealthProbe | None = None


def start_order(modules: Sequence[Module]) -> list[Module]:
    """The modules sorted so each starts after the ones it requires (stable: otherwise in the given order).

    Raises:
        ValueError: Two modules share a name, a module requires an unknown one, or the requirements
            form a cycle.
    """
    by_name: dict[str, Module] = {}
    for module in modules:
        if module.name in by_name:
            raise ValueError(f"two modules are named {module.name!r}")
        by_name[module.name] = module
    for module in modules:
        unknown = [name for name in module.requires if name not in by_name]
        if unknown:
            raise ValueError(f"module {module.name!r} requires unknown module(s): {', '.join(unknown)}")
    ordered: list[Module] = []
    done: set[str] = set()
    visiting: list[str] = []

    def visit(module: Module) -> None:
        if module.name in done:
            return
        if module.name in visiting:
            cycle = [*visiting[visiting.index(module.name) :], module.name]
            raise ValueError(f"module requirements form a cycle: {' -> '.join(cycle)}")
        visiting.append(module.name)
        for name in module.requires:
            visit(by_name[name])
        visiting.pop()
        done.add(module.name)
        ordered.append(module)

    for module in modules:
        visit(module)
    return ordered


@contextlib.asynccontextmanager
async def background(work: Coroutine[Any, Any, None], name: str) -> AsyncIterator[None]:
    """Run ``work`` as a task while the block runs (a module's lifespan); cancel it and wait for it at the end.

    Args:
        work: The coroutine, e.g. a consumer's ``run()``.
        name: The task's name (it shows in task dumps and py-spy).
    """
    task = asyncio.create_task(work, name=name)
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def raise_if_stopping() -> None:
    """Raise :class:`asyncio.CancelledError` when the current task was cancelled and the cancel got lost.

    redis-py (8.x) can swallow a cancel that lands while it connects, subscribes or waits in a read with a
    timeout: the call returns as if nothing happened. A background loop calling Redis then outlives its stop,
    and the app's shutdown waits out its step bound (15 s). Loops call this after their Redis calls.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError
