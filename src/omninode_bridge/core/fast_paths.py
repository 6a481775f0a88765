"""Two per-request costs of Litestar removed: dependencies resolved in a task group, guards given copies.

Guards get the route handler itself, not a ``copy(handler)`` per guard call (a shallow copy of an object
of ~60 attributes, ~4% of a small request). A guard must not mutate the handler it is given; the app's
guards (``platform.require_scope``) do not read it at all.

Dependencies are resolved one after another, not in an anyio task group per request.

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
from litestar.handlers.base import BaseRouteHandler

__all__ = ["install_request_fast_paths"]


async def _resolve_in_turn(
    self: KwargsModel, connection: ASGIConnection[Any, Any, Any, Any], kwargs: dict[str, Any]
) -> DependencyCleanupGroup:
    cleanup_group = DependencyCleanupGroup()
    for batch in self.dependency_batches:
        for dependency in batch:
            await resolve_dependency(dependency, connection, kwargs, cleanup_group)
    return cleanup_group


async def _authorize(self: BaseRouteHandler, connection: ASGIConnection[Any, Any, Any, Any]) -> None:
    for guard in self.resolve_guards():
        await guard(connection, self)  # type: ignore[misc]  # Litestar's own call, minus the copy


def install_request_fast_paths() -> None:
    """Install both for every Litestar app of the process (idempotent)."""
    KwargsModel.resolve_dependencies = _resolve_in_turn  # type: ignore[method-assign]
    BaseRouteHandler.authorize_connection = _authorize  # type: ignore[method-assign]
