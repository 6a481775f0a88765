"""Metrics endpoints: ``POST /execute`` (JSON or SSE), feedback, executions, models, recommendations."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody, QueryParameter
from litestar.response import ServerSentEvent, ServerSentEventMessage

from omninode_bridge import platform
from omninode_bridge.core.db import UnitOfWork
from omninode_bridge.core.errors import ProblemError, correlation_id_of
from omninode_bridge.core.inputs import InputError, check_datetime_range, param
from omninode_bridge.core.inputs import limit as page_size
from omninode_bridge.core.openapi import documented, error_responses
from omninode_bridge.core.paging import BigintCursorQuery, bigint_cursor
from omninode_bridge.modules.metrics import schemas
from omninode_bridge.modules.metrics.models import MetricsExecution
from omninode_bridge.modules.metrics.services import MetricsStore, ModelExecutor, Plan, stats_of_row

__all__ = ["MetricsController"]

Limit = Annotated[int, param(Annotated[int, page_size(500)])]
TaskTypeQuery = Annotated[str | None, param(schemas.TaskType)]
ModelQuery = Annotated[str | None, param(schemas.ModelId)]
ModelPath = Annotated[str, param(schemas.ModelId, path=True, description="A model id of the catalog.")]
_WHEN = "RFC 3339 with a timezone offset or Z"
_EXECUTE_RESPONSES = error_responses(
    {
        200: documented(
            schemas.ExecuteResponse,
            'The answer. With `stream: true` the body is `text/event-stream`: `delta` events ({"text"}) as the '
            "model writes, then one `result` event with this body (or an `error` event with a problem).",
        ),
        422: "Invalid input (or the model refused the request itself)",
        429: "Rate limit exceeded, or the key's daily budget is spent (nothing was sent to a model)",
        502: "Every model tried failed; `attempts` lists them",
        503: "No model serves the task type, every one is cooling down or busy, or the module is not running",
    },
    body=True,
)
_encoder = msgspec.json.Encoder()


def _key_id(request: Request[Any, Any, Any]) -> uuid.UUID | None:
    principal = platform.principal_or_none(request)
    return principal.key_id if principal is not None else None


def _summary(row: MetricsExecution) -> dict[str, Any]:
    return {
        "execution_id": row.execution_id, "task_type": row.task_type, "model": row.model_id,
        "strategy": row.strategy, "routed": row.routed, "streamed": row.streamed, "outcome": row.outcome,
        "error_class": row.error_class, "latency_ms": row.latency_ms, "ttft_ms": row.ttft_ms,
        "tokens": schemas.Tokens(input=row.input_tokens, output=row.output_tokens, estimated=row.tokens_estimated),
        "cost_usd": row.cost_usd, "quality_score": row.quality_score, "feedback_score": row.feedback_score,
        "feedback_label": row.feedback_label, "correlation_id": row.correlation_id, "created_at": row.created_at,
    }  # fmt: skip


class MetricsController(Controller):
    """AI task execution over the model catalog, measured and learned from (scope ``metrics``)."""

    tags = ["metrics"]
    security = platform.API_KEY_SECURITY
    opt = platform.require_scope("metrics")

    @post("/execute", operation_id="executeTask", summary="Run an AI task on the best model for it",
          status_code=200, responses=_EXECUTE_RESPONSES)  # fmt: skip
    async def execute(
        self,
        request: Request[Any, Any, Any],
        metrics: NamedDependency[ModelExecutor],
        data: JSONBody[schemas.ExecuteRequest],
    ) -> Response[Any]:
        """Route the task (or use `model`), call the model with failover, measure latency, tokens and cost,
        score the answer against the task type's checks, store and publish the measurements, and answer with
        the response, the metrics and the current recommendations."""
        executor = metrics
        correlation_id = correlation_id_of(request) or str(uuid.uuid4())
        plan = await executor.prepare(data, key_id=_key_id(request), correlation_id=correlation_id)
        if not data.stream:
            return Response(await executor.run(plan))
        return ServerSentEvent(self._stream(metrics, plan))

    @staticmethod
    async def _stream(executor: ModelExecutor, plan: Plan) -> AsyncIterator[ServerSentEventMessage]:
        queue: asyncio.Queue[ServerSentEventMessage | None] = asyncio.Queue()

        async def delta(text: str) -> None:
            await queue.put(ServerSentEventMessage(event="delta", data=_encoder.encode({"text": text}).decode()))

        async def run() -> None:
            try:
                result = await executor.run(plan, on_delta=delta)
                await queue.put(ServerSentEventMessage(event="result", data=_encoder.encode(result).decode()))
            except ProblemError as exc:
                extra = exc.extra if isinstance(exc.extra, dict) else {}
                problem = {"status": exc.status_code, "detail": exc.detail, **extra}
                await queue.put(ServerSentEventMessage(event="error", data=_encoder.encode(problem).decode()))
            finally:
                await queue.put(None)

        # The execution finishes (and is stored) even if the client goes away mid-stream.
        task = asyncio.create_task(run(), name=f"metrics-execution-{plan.execution_id}")
        executor.detach(task)
        while (message := await queue.get()) is not None:
            yield message

    @post("/executions/{execution_id:uuid}/feedback", operation_id="postExecutionFeedback",
          summary="Report the real outcome of an execution", status_code=200,
          responses=error_responses({404: "No such execution", 409: "The execution produced no answer"},
                                    body=True))  # fmt: skip
    async def feedback(
        self,
        metrics: NamedDependency[ModelExecutor],
        execution_id: FromPath[uuid.UUID],
        data: JSONBody[schemas.Feedback],
    ) -> schemas.FeedbackAccepted:
        """A score 0..1 (and a label) for the answer's real quality; it joins the model's quality statistics
        on the task type, which the router learns from."""
        return await metrics.feedback(execution_id, data)

    @get("/executions", operation_id="listExecutions", summary="Executions, newest first",
         responses=platform.AUTH_RESPONSES)  # fmt: skip
    async def executions(
        self,
        uow: NamedDependency[UnitOfWork],
        cursor: BigintCursorQuery = None,
        limit: Limit = 50,
        task_type: TaskTypeQuery = None,
        model: ModelQuery = None,
        outcome: Annotated[Literal["success", "failed"] | None, QueryParameter()] = None,
        since: Annotated[dt.datetime | None, QueryParameter(description=f"created_at >= since; {_WHEN}")] = None,
    ) -> schemas.ExecutionPage:
        """Stored executions (one per request; attempts are in each execution's detail)."""
        check_datetime_range(since, "since", source="query")
        rows, next_cursor = await MetricsStore(uow).page(
            limit=limit, cursor=bigint_cursor(cursor), task_type=task_type, model_id=model, outcome=outcome,
            since=since,
        )  # fmt: skip
        return schemas.ExecutionPage(
            items=[schemas.ExecutionSummary(**_summary(r)) for r in rows], next_cursor=next_cursor
        )

    @get("/executions/{execution_id:uuid}", operation_id="getExecution", summary="One execution and its attempts",
         responses=error_responses({404: "No such execution"}))  # fmt: skip
    async def execution(
        self, uow: NamedDependency[UnitOfWork], execution_id: FromPath[uuid.UUID]
    ) -> schemas.ExecutionDetail:
        """The execution, each model tried, the quality checks, and the prompt and answer if stored."""
        rows = await MetricsStore(uow).execution(execution_id)
        if not rows:
            raise ProblemError(404, f"No execution with id {execution_id}.")
        head = rows[0]
        details = dict(head.details or {})
        return schemas.ExecutionDetail(
            **_summary(head),
            attempts=msgspec.convert(details.get("attempts") or [], list[schemas.Attempt]),
            quality_checks=msgspec.convert(head.quality_checks, list[schemas.QualityCheck] | None),
            metadata=details.get("metadata") or {},
            prompt=head.prompt,
            response=head.response,
        )

    @get("/models", operation_id="listModels", summary="The model catalog with live status",
         responses=platform.AUTH_RESPONSES)  # fmt: skip
    async def models(
        self, metrics: NamedDependency[ModelExecutor], uow: NamedDependency[UnitOfWork]
    ) -> schemas.ModelList:
        """Every catalog model: endpoint, prices, limits, task types, and now: cooldown, calls in flight, and the
        success rate of its last 100 attempts."""
        executor = metrics
        specs = executor.catalog.models
        ids = [m.id for m in specs]
        cooling = await executor.coordination.cooling(ids)
        in_flight = await executor.coordination.in_flight(ids) if ids else {}
        recent = await MetricsStore(uow).recent_success(ids) if ids else {}
        items = []
        for m in specs:
            attempts, successes = recent.get(m.id, (0, 0))
            items.append(schemas.ModelInfo(
                id=m.id, model=m.model, base_url=m.base_url, task_types=list(m.task_types),
                price_input_per_million=m.price.input_per_million, price_output_per_million=m.price.output_per_million,
                context_window=m.context_window, max_concurrency=m.max_concurrency, timeout_seconds=m.timeout_seconds,
                cooling_down_seconds=cooling.get(m.id), in_flight=in_flight.get(m.id, 0), recent_attempts=attempts,
                recent_success_rate=round(successes / attempts, 4) if attempts else None,
            ))  # fmt: skip
        return schemas.ModelList(items=items)

    @get("/models/{model_id:str}/stats", operation_id="getModelStats", summary="A model's statistics per task type",
         responses=error_responses({404: "No such model in the catalog"}))  # fmt: skip
    async def model_stats(
        self,
        metrics: NamedDependency[ModelExecutor],
        uow: NamedDependency[UnitOfWork],
        model_id: ModelPath,
        task_type: TaskTypeQuery = None,
        since: Annotated[dt.datetime | None, QueryParameter(description=f"window start; {_WHEN}")] = None,
    ) -> schemas.ModelStatsReport:
        """What the router has learned (all time, moving averages) and exact figures (p50/p95 latency, cost,
        tokens, quality, feedback) of the executions since `since`."""
        check_datetime_range(since, "since", source="query")
        executor = metrics
        if executor.catalog.model(model_id) is None:
            raise ProblemError(404, f"No model {model_id} in the catalog.")
        await executor.aggregator.flush()  # the durable statistics hold this process's executions
        store = MetricsStore(uow)
        items = []
        for row in await store.stats_of_model(model_id, task_type):
            s = stats_of_row(row)
            items.append(schemas.TaskStats(
                task_type=row.task_type, samples=s.samples, successes=s.successes,
                success_rate=round(s.success_rate, 4), latency_ewma_ms=round(s.latency_ewma_ms, 3),
                latency_p95_estimate_ms=round(s.latency_p95_ms, 3) if s.latency_p95_ms is not None else None,
                cost_mean_usd=s.cost_mean_usd, quality_mean=round(s.quality_mean, 4),
                quality_variance=round(s.quality_variance, 6), quality_samples=s.quality_n,
                window=await store.window(model_id, row.task_type, since),
            ))  # fmt: skip
        return schemas.ModelStatsReport(model=model_id, since=since, task_types=items)

    @get("/recommendations", operation_id="getRecommendations", summary="Models ranked for a task type",
         responses=error_responses({422: "Invalid input (e.g. an unknown task type)"}))  # fmt: skip
    async def recommendations(
        self,
        metrics: NamedDependency[ModelExecutor],
        task_type: Annotated[str, param(schemas.TaskType)],
        strategy: Annotated[Literal["quality", "cost", "latency", "balanced"], QueryParameter()] = "balanced",
    ) -> schemas.RecommendationList:
        """The task type's models ranked by the strategy's expected utility, each with the figures behind it, a
        reason, and its confidence (its chance of being the best under the current posteriors)."""
        executor = metrics
        if task_type not in executor.catalog.task_types:
            raise InputError("unknown task type", field="task_type", source="query")
        items = await executor.recommendations(task_type, strategy)
        return schemas.RecommendationList(task_type=task_type, strategy=strategy, items=items)
