"""Namespace statistics from the reducer."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, get
from litestar.di import NamedDependency

from omninode_bridge.core.db import UnitOfWork
from omninode_bridge.core.errors import ProblemError
from omninode_bridge.core.inputs import Namespace, param
from omninode_bridge.core.openapi import error_responses
from omninode_bridge.modules.reducer.schemas import NamespaceStats
from omninode_bridge.modules.reducer.services import namespace_stats
from omninode_bridge.platform import API_KEY_SECURITY, require_namespace, require_scope

__all__ = ["NamespaceStatsController"]


class NamespaceStatsController(Controller):
    """Per-namespace aggregates (scope ``stamping``: they describe the stamps)."""

    path = "/namespaces"
    tags = ["stamping"]
    opt = require_scope("stamping")
    security = API_KEY_SECURITY

    @get("/{namespace:str}/stats", operation_id="getNamespaceStats", summary="Aggregated stamps of a namespace",
         responses=error_responses({404: "Nothing counted for this namespace yet"}))  # fmt: skip
    async def stats(
        self,
        request: Request[Any, Any, Any],
        uow: NamedDependency[UnitOfWork],
        namespace: Annotated[str, param(Namespace, path=True)],
    ) -> NamespaceStats:
        """Totals, bytes, content types and workflows counted so far (eventually consistent within one
        reducer window); 404 before the first stamp of the namespace is counted."""
        await require_namespace(request, namespace)
        stats = await namespace_stats(uow, namespace)
        if stats is None:
            raise ProblemError(404, f"Nothing counted for namespace {namespace} yet.", slug="not-found")
        return stats
