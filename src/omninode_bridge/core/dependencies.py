"""Route dependencies resolved one after another, not in an anyio task group per request.

Litestar resolves the independent dependencies of a handler (a "batch": ``uow``, a service and a state
object are one) concurrently, in a task group: three tasks, a cancel scope and an exception group per
request, a measured ~8% of a small request's CPU (py-spy, ``bench.platform``). This app's providers do
not wait on each other: they return objects from the module state or open a unit of work, which
checks a connection out of the pool on first use, so resolving them in turn costs the same wall time
without the tasks. A dependency that fails raises its own exception before the handler runs, as the
concurrent version raised the first of its group.
"""

from __future__ import annotations

from typing import Any

from litestar._kwargs.cleanup import DependencyCleanupGroup
from litestar._kwargs.dependencies import resolve_dependency
from litestar._kwargs.kwargs_model import KwargsModel
from litestar.connection import ASGIConnection

__all__ = ["resolve_dependencies_in_turn"]


async def _resolve_in_turn(
    self: KwargsModel, connection: ASGIConnection[Any, Any, Any, Any], kwargs: dict[str, Any]
) -> DependencyCleanupGroup:
    cleanup_group = DependencyCleanupGroup()
    for batch in self.dependency_batches:
        for dependency in batch:
            await resolve_dependency(dependency, connection, kwargs, cleanup_group)
    return cleanup_group


def resolve_dependencies_in_turn() -> None:
    """Install the in-turn resolution for every Litestar app of the process (idempotent)."""
    KwargsModel.resolve_dependencies = _resolve_in_turn  # type: ignore[method-assign,assignment]
