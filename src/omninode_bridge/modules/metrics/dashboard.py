"""The models page: ``GET /models-dashboard`` (HTML, charts drawn in the browser) and its data,
``GET /models-dashboard/data`` (JSON over the stored executions, in time buckets).

``/models-dashboard`` is not under ``/models/`` so no model id can shadow it.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated, Literal

from litestar import Controller, MediaType, Response, get
from litestar.di import NamedDependency
from litestar.params import QueryParameter

from omninode_bridge import platform
from omninode_bridge.core.db import UnitOfWork
from omninode_bridge.core.inputs import InputError, param
from omninode_bridge.core.openapi import error_responses
from omninode_bridge.core.pages import page_response
from omninode_bridge.modules.metrics import schemas
from omninode_bridge.modules.metrics.services import ModelExecutor, series

__all__ = ["ModelsDashboardController"]

_PAGE = Path(__file__).resolve().parent / "static" / "models.html"


class ModelsDashboardController(Controller):
    """How each model does per task type over time, for people (the page) and programs (its JSON)."""

    path = "/models-dashboard"
    tags = ["metrics"]

    @get("/", operation_id="getModelsDashboardPage", summary="A page charting the models per task type",
         opt=platform.OPTIONAL_AUTH, media_type=MediaType.HTML, include_in_schema=True, security=[],
         responses=platform.AUTH_RESPONSES)  # fmt: skip
    async def page(self) -> Response[str]:
        """A small HTML page: give it a key with scope `metrics` (in the form, or as `#key=...` in the URL,
        which never reaches the server) and it charts, per task type, each model's quality, latency, cost and
        share of traffic over time, with the current recommendation."""
        return page_response(_PAGE)

    @get("/data", operation_id="getModelsDashboardData", summary="The models page's data",
         security=platform.API_KEY_SECURITY, opt=platform.require_scope("metrics"),
         responses=error_responses({422: "Invalid input (e.g. an unknown task type)"}))  # fmt: skip
    async def data(
        self,
        metrics: NamedDependency[ModelExecutor],
        uow: NamedDependency[UnitOfWork],
        task_type: Annotated[str | None, param(schemas.TaskType)] = None,
        hours: Annotated[int, QueryParameter(ge=1, le=720, description="The window: the last this many hours.")] = 24,
        strategy: Annotated[Literal["quality", "cost", "latency", "balanced"], QueryParameter()] = "balanced",
    ) -> schemas.ModelsDashboard:
        """Per task type (every one of the catalog, or `task_type`): each model's executions in 24 time buckets
        of the window (share of the task type's traffic, success rate, mean quality, latency and cost of its
        answers) and the models ranked now for `strategy`."""
        executor = metrics
        if task_type is not None and task_type not in executor.catalog.task_types:
            raise InputError("unknown task type", field="task_type", source="query")
        until = dt.datetime.now(dt.UTC)
        since = until - dt.timedelta(hours=hours)
        names = sorted(executor.catalog.task_types)
        width, found = await series(uow, since=since, until=until, task_type=task_type, task_types=names)
        task_types = []
        for name, (executions, models) in found.items():
            ranked = await executor.recommendations(name, strategy)
            task_types.append(schemas.TaskTypeSeries(
                task_type=name, executions=executions, recommended=ranked[0].model if ranked else None,
                recommendations=ranked, models=models,
            ))  # fmt: skip
        return schemas.ModelsDashboard(
            since=since, until=until, bucket_seconds=width, strategy=strategy, task_types=task_types
        )
