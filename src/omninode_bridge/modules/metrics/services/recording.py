"""Recording an execution: its rows and its event in one statement (one round trip, committed by itself), the
Redis side in one script call at the same time, and the durable statistics handed to the aggregator; and a
caller's feedback folded into the same statistics."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from collections.abc import Sequence
from typing import Any

import msgspec
import structlog

from omninode_bridge.core.db import Database
from omninode_bridge.core.errors import ProblemError
from omninode_bridge.core.events import EventPublisher, new_envelope
from omninode_bridge.modules.metrics import schemas
from omninode_bridge.modules.metrics.messages import EVENT_TYPE, METRICS_TOPIC, AttemptMeasured, TaskExecuted
from omninode_bridge.modules.metrics.services.aggregate import StatsAggregator
from omninode_bridge.modules.metrics.services.coordination import Coordination, Observation
from omninode_bridge.modules.metrics.services.judge import Judged
from omninode_bridge.modules.metrics.services.plan import Plan, Redact, Tried, msgspec_to_dict
from omninode_bridge.modules.metrics.services.quality import Score
from omninode_bridge.modules.metrics.services.store import RECORD_EXECUTION, MetricsStore
from omninode_bridge.modules.metrics.settings import MetricsSettings

__all__ = ["Recorder"]

log = structlog.get_logger(__name__)
_rows_encoder = msgspec.json.Encoder()


class Recorder:
    """Stores what executions measured and what callers report (the one place the module commits).

    Args:
        settings: The module's settings.
        database: For the unit of work of each record.
        publisher: The outbox.
        coordination: Redis state shared by processes (the statistics' and spend's fast copies).
        redact: Applied to prompts and answers before they are stored (only with ``store_prompts``).
        aggregator: Writes the durable statistics behind the requests.
    """

    def __init__(
        self,
        settings: MetricsSettings,
        database: Database,
        publisher: EventPublisher,
        coordination: Coordination,
        redact: Redact | None,
        aggregator: StatsAggregator,
    ) -> None:
        self.aggregator = aggregator
        self.settings = settings
        self.database = database
        self.publisher = publisher
        self.coordination = coordination
        self.redact = redact

    def record(
        self,
        plan: Plan,
        tried: list[Tried],
        attempts: list[schemas.Attempt],
        success: Tried | None,
        quality: Score | None,
        total_ms: float,
        leases: list[tuple[str, str]],
        judges: Sequence[Judged] = (),
    ) -> tuple[float, asyncio.Future[tuple[None, None]]]:
        """Start writing an execution: the rows and the event (one statement, committed by itself) and the
        Redis side (one script: ``leases`` given back, statistics, failure run, spend), at the same time.

        Both are under way when this returns (their tasks start at the caller's next ``await``), so the
        caller can build its answer while PostgreSQL commits; it must await the future before answering:
        the record is durable, and the slots are back, once it is done. The durable statistics go to the
        aggregator after both succeeded.

        Returns:
            The cost (the attempts' and the judges') and the write.
        """
        rows: list[dict[str, Any]] = []
        cost_total = 0.0
        base = {
            "execution_id": plan.execution_id, "task_type": plan.task_type, "strategy": plan.strategy,
            "routed": plan.routed, "streamed": plan.stream, "key_id": plan.key_id,
            "correlation_id": plan.correlation_id, "prompt": None, "response": None, "feedback_score": None,
            "feedback_label": None, "details": {},
        }  # fmt: skip
        for number, one in enumerate(tried, start=1):
            done = one.completion
            cost = one.spec.price.cost(done.input_tokens, done.output_tokens) if done is not None else 0.0
            cost_total += cost
            rows.append({
                **base, "attempt": number, "model_id": one.spec.id,
                "outcome": "success" if done is not None else (one.error.error_class if one.error else "failed"),
                "error_class": one.error.error_class if one.error else None,
                "error_detail": one.error.detail if one.error else None,
                "latency_ms": one.latency_ms, "ttft_ms": done.ttft_ms if done else None,
                "input_tokens": done.input_tokens if done else 0, "output_tokens": done.output_tokens if done else 0,
                "tokens_estimated": done.usage_estimated if done else False, "cost_usd": cost,
                "quality_score": quality.value if done is not None and quality is not None else None,
                "quality_checks": None,
            })  # fmt: skip
        judged_cost = sum(j.cost_usd for j in judges)
        cost_total += judged_cost
        done = success.completion if success is not None else None
        last_error = next((t.error for t in reversed(tried) if t.error is not None), None)
        checks = (
            [{"name": c.name, "passed": c.passed, "detail": c.detail, "score": c.score} for c in quality.checks]
            if quality else None
        )  # fmt: skip
        prompt, response = None, None
        if self.settings.store_prompts and self.redact is not None:
            prompt = self.redact(list(plan.call.messages))
            response = self.redact({"text": done.text})["text"] if done is not None else None
        rows.insert(0, {
            **base, "attempt": 0, "model_id": success.spec.id if success else (tried[-1].spec.id if tried else None),
            "outcome": "success" if done is not None else "failed",
            "error_class": None if done is not None else (last_error.error_class if last_error else "unavailable"),
            "error_detail": None, "latency_ms": total_ms, "ttft_ms": done.ttft_ms if done else None,
            "input_tokens": done.input_tokens if done else 0, "output_tokens": done.output_tokens if done else 0,
            "tokens_estimated": done.usage_estimated if done else False, "cost_usd": cost_total,
            "quality_score": quality.value if quality else None, "quality_checks": checks, "prompt": prompt,
            "response": response,
            "details": {
                "metadata": plan.metadata, "attempts": [msgspec_to_dict(a) for a in attempts],
                **({"judges": [{"model": j.model, "score": j.result.score, "latency_ms": j.latency_ms,
                                "cost_usd": j.cost_usd, "input_tokens": j.input_tokens,
                                "output_tokens": j.output_tokens} for j in judges]} if judges else {}),
            },
        })  # fmt: skip
        for row in rows:
            row["metadata"] = row.pop("details")  # the column's name
        payload = TaskExecuted(
            execution_id=str(plan.execution_id), task_type=plan.task_type, model=rows[0]["model_id"],
            strategy=plan.strategy, routed=plan.routed, streamed=plan.stream, outcome=rows[0]["outcome"],
            error_class=rows[0]["error_class"], latency_ms=total_ms, ttft_ms=rows[0]["ttft_ms"],
            input_tokens=rows[0]["input_tokens"], output_tokens=rows[0]["output_tokens"],
            tokens_estimated=rows[0]["tokens_estimated"], cost_usd=cost_total,
            quality_score=rows[0]["quality_score"],
            attempts=[AttemptMeasured(model=a.model, outcome=a.outcome, latency_ms=a.latency_ms) for a in attempts],
        )  # fmt: skip
        observations = [
            Observation(
                one.spec.id, success=one.completion is not None, latency_ms=one.latency_ms,
                cost_usd=one.spec.price.cost(one.completion.input_tokens, one.completion.output_tokens)
                if one.completion is not None else 0.0,
                quality=quality.value if one.completion is not None and quality is not None else None,
            )
            for one in tried
            if one.error is None or one.error.retryable  # a 4xx is the request's fault: nothing learned
        ]  # fmt: skip
        envelope = new_envelope(
            event_type=EVENT_TYPE, payload=payload, correlation_id=plan.correlation_id,
            event_id=plan.execution_id, source="omninode-bridge.metrics",
        )  # fmt: skip
        spend = None
        if plan.key_id is not None and self.settings.daily_budget_usd > 0:
            spend = (plan.key_id, dt.datetime.now(dt.UTC).date(), cost_total)
        redis_side = self.coordination.finish(
            plan.task_type, leases=leases, observations=observations, alpha=self.settings.latency_alpha,
            answered=success.spec.id if success is not None else None, spend=spend,
        )  # fmt: skip
        written = asyncio.gather(self._store(rows, envelope), redis_side)
        task_type, execution_id = plan.task_type, plan.execution_id

        def finished(write: asyncio.Future[tuple[None, None]]) -> None:
            # Only once both are done (a callback, not a third task): statistics of a record that failed to
            # commit are not written behind it. Logged here too: a request that left no longer reads it.
            if write.cancelled():
                return
            if (error := write.exception()) is not None:
                log.warning("metrics: an execution's record failed", execution_id=str(execution_id),
                            error=type(error).__name__)  # fmt: skip
                return
            self.aggregator.add(task_type, observations)

        written.add_done_callback(finished)
        return cost_total, written

    async def _store(self, rows: list[dict[str, Any]], envelope: Any) -> None:
        async with self.database.unit_of_work() as uow:
            # The relay is not woken per execution: it picks the events up at its next poll (200 ms by
            # default, as the durable statistics trail). At one connection a wake per commit was a relay round
            # (five PostgreSQL round trips and a Kafka produce) per request, on the same event loop.
            params = {"rows": _rows_encoder.encode(rows).decode(),
                      **self.publisher.polled_arrays(METRICS_TOPIC, [envelope])}  # fmt: skip
            await uow.commit_one(RECORD_EXECUTION, params)

    async def feedback(self, execution_id: uuid.UUID, feedback: schemas.Feedback) -> schemas.FeedbackAccepted:
        """Store a caller's outcome score and fold it into the model's quality statistics.

        Raises:
            ProblemError: 404 for an unknown execution; 409 for one that produced no answer.
        """
        await self.aggregator.flush()  # this process's executions first, so the returned figures include them
        async with self.database.unit_of_work() as uow:
            store = MetricsStore(uow)
            rows = await store.execution(execution_id)
            if not rows:
                raise ProblemError(404, f"No execution with id {execution_id}.")
            head = rows[0]
            if head.outcome != "success" or head.model_id is None:
                raise ProblemError(409, "This execution produced no answer; there is nothing to score.")
            await store.set_feedback(execution_id, feedback.score, feedback.label)
            stats = await store.observe(
                head.task_type, head.model_id, success=False, quality=feedback.score,
                alpha=self.settings.latency_alpha, counts_as_execution=False,
            )  # fmt: skip
            await uow.commit()
        observation = Observation(head.model_id, success=False, quality=feedback.score, counts_as_execution=False)
        await self.coordination.finish(head.task_type, observations=[observation], alpha=self.settings.latency_alpha)
        return schemas.FeedbackAccepted(
            execution_id=execution_id, model=head.model_id, task_type=head.task_type,
            quality_mean=round(stats.quality_mean, 6), quality_samples=stats.quality_n,
        )  # fmt: skip
