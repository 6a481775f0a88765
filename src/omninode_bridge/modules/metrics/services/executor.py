"""The model executor: route, call with failover, measure, score, store, publish, learn.

:meth:`ModelExecutor.prepare` does everything that can refuse a request (validation, catalog, budget,
cooldowns) before anything is sent upstream or a stream is opened; :meth:`ModelExecutor.run` calls the models.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import random
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import msgspec
import structlog

from omninode_bridge.core.db import Database
from omninode_bridge.core.errors import ProblemError
from omninode_bridge.core.events import EventPublisher, new_envelope
from omninode_bridge.core.inputs import InputError
from omninode_bridge.modules.metrics import schemas
from omninode_bridge.modules.metrics.contract import ModelsContract, ModelSpec
from omninode_bridge.modules.metrics.messages import EVENT_TYPE, METRICS_TOPIC, AttemptMeasured, TaskExecuted
from omninode_bridge.modules.metrics.services import instruments
from omninode_bridge.modules.metrics.services.coordination import Coordination
from omninode_bridge.modules.metrics.services.quality import Score, score
from omninode_bridge.modules.metrics.services.router import Candidate, Constraints, ModelStats, rank, recommend
from omninode_bridge.modules.metrics.services.store import MetricsStore
from omninode_bridge.modules.metrics.services.upstream import Call, Completion, UpstreamClient, UpstreamError
from omninode_bridge.modules.metrics.settings import MetricsSettings

__all__ = ["ExecutionFailed", "ModelExecutor", "Plan", "Redact"]

log = structlog.get_logger(__name__)

#: Replaces secrets in a stored prompt (the hooks module's redactor, handed in by the composition root).
Redact = Callable[[Any], Any]
#: Output tokens assumed when pricing a model never measured and no max_tokens is given.
_ASSUMED_OUTPUT_TOKENS = 256
Delta = Callable[[str], Awaitable[None]]


class ExecutionFailed(ProblemError):
    """Every model tried failed (502), or the request itself was refused upstream (the upstream's 4xx)."""


@dataclass(slots=True)
class Plan:
    """A request that passed every check, with the models to try in order."""

    execution_id: uuid.UUID
    task_type: str
    strategy: str
    routed: bool
    stream: bool
    call: Call
    order: list[ModelSpec]
    skipped: list[schemas.Attempt]
    key_id: uuid.UUID | None
    correlation_id: str
    metadata: dict[str, Any]
    input_estimate: int
    candidates: list[Candidate] = field(default_factory=list)


@dataclass(slots=True)
class _Tried:
    spec: ModelSpec
    latency_ms: float
    error: UpstreamError | None = None
    completion: Completion | None = None


class ModelExecutor:
    """Runs AI tasks over the catalog's models (the metrics module's public service).

    Args:
        settings: The module's settings.
        catalog: The validated model catalog.
        client: The process's upstream client.
        coordination: Redis state shared by processes.
        database: For the unit of work of each execution.
        publisher: The outbox.
        redact: Applied to prompts and answers before they are stored (only with ``store_prompts``).
        rng: Thompson sampling's random source.
    """

    def __init__(
        self,
        settings: MetricsSettings,
        catalog: ModelsContract,
        client: UpstreamClient,
        coordination: Coordination,
        database: Database,
        publisher: EventPublisher,
        redact: Redact | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.settings = settings
        self.catalog = catalog
        self.client = client
        self.coordination = coordination
        self.database = database
        self.publisher = publisher
        self.redact = redact
        self.rng = rng or random.Random()  # noqa: S311 - exploration, not security
        self.background: set[asyncio.Task[None]] = set()

    def detach(self, task: asyncio.Task[None]) -> None:
        """Keep a streamed execution running (and storing) after its client went away."""
        self.background.add(task)
        task.add_done_callback(self.background.discard)

    async def drain(self, seconds: float) -> None:
        """Wait (at most ``seconds``) for detached executions at shutdown."""
        if self.background:
            await asyncio.wait(set(self.background), timeout=seconds)

    # Statistics ---------------------------------------------------------------------------------------------
    async def stats(self, task_type: str, model_ids: list[str]) -> dict[str, ModelStats]:
        """Statistics from Redis; those Redis lost are read from PostgreSQL and cached again."""
        cached = await self.coordination.stats(task_type, model_ids)
        missing = [m for m, s in cached.items() if s is None]
        found = {m: s for m, s in cached.items() if s is not None}
        if missing:
            async with self.database.unit_of_work() as uow:
                durable = await MetricsStore(uow).stats(task_type, missing)
            await self.coordination.put_stats(task_type, durable)
            found.update(durable)
        return {m: found.get(m) or ModelStats() for m in model_ids}

    async def recommendations(self, task_type: str, strategy: str) -> list[schemas.Recommendation]:
        """The models of a task type ranked for a strategy (empty when none serves it)."""
        specs = self.catalog.serving(task_type)
        ids = [m.id for m in specs]
        stats = await self.stats(task_type, ids)
        cooling = await self.coordination.cooling(ids)
        candidates = [Candidate(m.id, stats[m.id], m.price.cost(500, _ASSUMED_OUTPUT_TOKENS)) for m in specs]
        return _recommendations(candidates, strategy, self.rng, cooling)

    # Preparation ---------------------------------------------------------------------------------------------
    async def prepare(self, request: schemas.ExecuteRequest, *, key_id: uuid.UUID | None, correlation_id: str) -> Plan:
        """Check a request and choose the models to try.

        Raises:
            InputError: Both or neither of ``messages`` and ``prompt``; an unknown task type or model.
            ProblemError: 503 when no model serves the task type (or every one is cooling down, or excluded by
                the constraints); 429 when the key's daily budget is spent.
        """
        if (request.messages is None) == (request.prompt is None):
            raise InputError("give either messages or prompt (exactly one of them)", field="messages")
        if request.task_type not in self.catalog.task_types:
            known = ", ".join(sorted(self.catalog.task_types))
            raise InputError(f"unknown task type; known: {known}", field="task_type")
        messages: list[dict[str, Any]] = (
            [msg_to_dict(m) for m in request.messages] if request.messages is not None
            else [{"role": "user", "content": request.prompt}]
        )  # fmt: skip
        call = Call(messages, request.temperature, request.max_tokens, request.response_format)
        input_estimate = max(1, len(call.prompt_text()) // 4)
        specs = self.catalog.serving(request.task_type)
        if request.model is not None:
            chosen = self.catalog.model(request.model)
            if chosen is None:
                raise InputError("no such model in the catalog", field="model")
            if request.task_type not in chosen.task_types:
                raise InputError(f"model {chosen.id} does not serve task type {request.task_type}", field="model")
            specs = [chosen]
        if not specs:
            raise ProblemError(
                503, f"No model configured for task type {request.task_type}.", slug="no-model",
                headers={"Retry-After": "60"},
            )  # fmt: skip
        await self._check_budget(key_id)
        plan = Plan(
            execution_id=uuid.uuid4(), task_type=request.task_type, strategy=request.strategy,
            routed=request.model is None, stream=request.stream, call=call, order=[], skipped=[], key_id=key_id,
            correlation_id=correlation_id, metadata=request.metadata or {}, input_estimate=input_estimate,
        )  # fmt: skip
        await self._order(plan, specs, request.constraints)
        return plan

    async def _check_budget(self, key_id: uuid.UUID | None) -> None:
        budget = self.settings.daily_budget_usd
        if budget <= 0 or key_id is None:
            return
        today = dt.datetime.now(dt.UTC).date()
        spent = await self.coordination.spent(key_id, today)
        if spent is None:
            async with self.database.unit_of_work() as uow:
                spent = await MetricsStore(uow).spent(key_id, today)
            await self.coordination.seed_spent(key_id, today, spent)
        if spent >= budget:
            tomorrow = dt.datetime.combine(today + dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC)
            retry = max(1, int((tomorrow - dt.datetime.now(dt.UTC)).total_seconds()))
            raise ProblemError(
                429,
                f"Daily budget spent: this key's executions cost ${spent:.6f} today (UTC), the budget is "
                f"${budget:.6f} per day. Nothing was sent to a model.",
                slug="budget-exceeded", headers={"Retry-After": str(retry)},
                extra={"budget_usd": budget, "spent_usd": round(spent, 8)},
            )  # fmt: skip

    async def _order(self, plan: Plan, specs: list[ModelSpec], constraints: schemas.Constraints | None) -> None:
        ids = [m.id for m in specs]
        by_id = {m.id: m for m in specs}
        output_guess = plan.call.max_tokens or _ASSUMED_OUTPUT_TOKENS
        stats = await self.stats(plan.task_type, ids)
        candidates = [Candidate(m.id, stats[m.id], m.price.cost(plan.input_estimate, output_guess)) for m in specs]
        plan.candidates = candidates
        if not plan.routed:
            plan.order = specs
            return
        cooling = await self.coordination.cooling(ids)
        limits = Constraints(**msgspec_to_dict(constraints)) if constraints is not None else Constraints()
        admitted = [c for c in candidates if limits.admits(c)]
        if not admitted:
            raise ProblemError(503, f"No model of task type {plan.task_type} meets the constraints.", slug="no-model")
        warm = [c for c in admitted if c.model_id not in cooling]
        if not warm:
            wait = min(cooling[c.model_id] for c in admitted)
            raise ProblemError(
                503, f"Every model of task type {plan.task_type} is cooling down after failures.",
                slug="models-cooling-down", headers={"Retry-After": str(max(1, round(wait)))},
            )  # fmt: skip
        explore = self.settings.exploration == "thompson"
        plan.order = [by_id[c.model_id] for c in rank(warm, plan.strategy, self.rng, explore=explore)]
        plan.skipped = [schemas.Attempt(model=c.model_id, outcome="cooldown", latency_ms=0.0) for c in admitted
                        if c.model_id in cooling]  # fmt: skip

    # Execution ----------------------------------------------------------------------------------------------
    async def run(self, plan: Plan, on_delta: Delta | None = None) -> schemas.ExecuteResponse:
        """Call the plan's models in order until one answers (at most ``max_attempts`` calls).

        With ``on_delta`` the calls stream and each text delta is handed on as it arrives; once a delta was
        delivered, a failure can no longer fail over (the client has part of an answer).

        Raises:
            ExecutionFailed: No model answered (502), or the upstream refused the request itself (its 4xx).
        """
        started = time.perf_counter()
        tried: list[_Tried] = []
        attempts = list(plan.skipped)
        delivered = False

        async def forward(delta: str) -> None:
            nonlocal delivered
            delivered = True
            assert on_delta is not None
            await on_delta(delta)

        success: _Tried | None = None
        for spec in plan.order:
            if len(tried) >= self.settings.max_attempts:
                break
            if plan.input_estimate + (plan.call.max_tokens or 0) > spec.context_window:
                attempts.append(schemas.Attempt(model=spec.id, outcome="context_overflow", latency_ms=0.0,
                                                detail="the prompt does not fit its context window"))  # fmt: skip
                continue
            lease = await self.coordination.acquire(spec.id, spec.max_concurrency)
            if lease is None:
                attempts.append(schemas.Attempt(model=spec.id, outcome="at_capacity", latency_ms=0.0))
                continue
            try:
                completion = await (
                    self.client.stream(spec, plan.call, forward) if on_delta is not None
                    else self.client.complete(spec, plan.call)
                )  # fmt: skip
            except UpstreamError as exc:
                tried.append(_Tried(spec, exc.latency_ms, error=exc))
                attempts.append(schemas.Attempt(model=spec.id, outcome=exc.error_class, latency_ms=exc.latency_ms,
                                                detail=exc.detail))  # fmt: skip
                instruments.failed(spec.id, plan.task_type, exc.error_class)
                if exc.retryable and await self.coordination.failed(spec.id):
                    log.warning("model cooling down", model=spec.id, seconds=self.settings.cooldown_seconds)
                if not exc.retryable or delivered:
                    break
                continue
            finally:
                await self.coordination.release(spec.id, lease)
            success = _Tried(spec, completion.latency_ms, completion=completion)
            tried.append(success)
            attempts.append(schemas.Attempt(model=spec.id, outcome="success", latency_ms=completion.latency_ms))
            break
        total_ms = round((time.perf_counter() - started) * 1000, 3)
        quality = (
            score(self.catalog.task_types[plan.task_type].checks, success.completion.text, plan.call.response_format)
            if success is not None and success.completion is not None else None
        )  # fmt: skip
        cost = await self._store(plan, tried, attempts, success, quality, total_ms)
        if success is None or success.completion is None or quality is None:
            raise self._failure(plan, attempts)
        done = success.completion
        instruments.succeeded(success.spec.id, plan.task_type, done, cost)
        return schemas.ExecuteResponse(
            execution_id=plan.execution_id,
            response=done.text,
            model=success.spec.id,
            attempts=attempts,
            latency_ms=total_ms,
            ttft_ms=done.ttft_ms,
            tokens=schemas.Tokens(input=done.input_tokens, output=done.output_tokens, estimated=done.usage_estimated),
            cost_usd=round(cost, 10),
            quality=schemas.QualityReport(
                score=quality.value,
                checks=[schemas.QualityCheck(name=c.name, passed=c.passed, detail=c.detail) for c in quality.checks],
            ),
            recommendations=await self.recommendations(plan.task_type, plan.strategy),
            finish_reason=done.finish_reason,
        )

    def _failure(self, plan: Plan, attempts: list[schemas.Attempt]) -> ExecutionFailed:
        extra = {"execution_id": str(plan.execution_id), "attempts": [msgspec_to_dict(a) for a in attempts]}
        last = next((a for a in reversed(attempts) if a.outcome == "client_error"), None)
        if last is not None:
            return ExecutionFailed(422, f"The model refused the request: {last.detail}", slug="upstream-refused",
                                   extra=extra)  # fmt: skip
        if not any(a.outcome not in ("cooldown", "at_capacity") for a in attempts):
            return ExecutionFailed(503, "Every candidate model is at its concurrency limit.", slug="models-busy",
                                   headers={"Retry-After": "1"}, extra=extra)  # fmt: skip
        return ExecutionFailed(502, f"No model answered ({len(attempts)} attempts); see attempts.",
                               slug="models-failed", extra=extra)  # fmt: skip

    async def _store(
        self,
        plan: Plan,
        tried: list[_Tried],
        attempts: list[schemas.Attempt],
        success: _Tried | None,
        quality: Score | None,
        total_ms: float,
    ) -> float:
        """Rows, statistics and the event in one transaction; then the Redis copies. Returns the cost."""
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
        done = success.completion if success is not None else None
        last_error = next((t.error for t in reversed(tried) if t.error is not None), None)
        checks = [{"name": c.name, "passed": c.passed, "detail": c.detail} for c in quality.checks] if quality else None
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
            "details": {"metadata": plan.metadata, "attempts": [msgspec_to_dict(a) for a in attempts]},
        })  # fmt: skip
        payload = TaskExecuted(
            execution_id=str(plan.execution_id), task_type=plan.task_type, model=rows[0]["model_id"],
            strategy=plan.strategy, routed=plan.routed, streamed=plan.stream, outcome=rows[0]["outcome"],
            error_class=rows[0]["error_class"], latency_ms=total_ms, ttft_ms=rows[0]["ttft_ms"],
            input_tokens=rows[0]["input_tokens"], output_tokens=rows[0]["output_tokens"],
            tokens_estimated=rows[0]["tokens_estimated"], cost_usd=cost_total,
            quality_score=rows[0]["quality_score"],
            attempts=[AttemptMeasured(model=a.model, outcome=a.outcome, latency_ms=a.latency_ms) for a in attempts],
        )  # fmt: skip
        learned: dict[str, ModelStats] = {}
        async with self.database.unit_of_work() as uow:
            store = MetricsStore(uow)
            await store.record(rows)
            for one in tried:
                if one.error is not None and not one.error.retryable:
                    continue  # the request's fault (a 4xx), not the model's: nothing learned
                c = one.completion
                learned[one.spec.id] = await store.observe(
                    plan.task_type, one.spec.id, success=c is not None, latency_ms=one.latency_ms,
                    cost_usd=one.spec.price.cost(c.input_tokens, c.output_tokens) if c else 0.0,
                    quality=quality.value if c is not None and quality is not None else None,
                    alpha=self.settings.latency_alpha,
                )  # fmt: skip
            envelope = new_envelope(
                event_type=EVENT_TYPE, payload=payload, correlation_id=plan.correlation_id,
                event_id=plan.execution_id, source="omninode-bridge.metrics",
            )  # fmt: skip
            await self.publisher.publish(uow, METRICS_TOPIC, envelope)
            await uow.commit()
        await self.coordination.put_stats(plan.task_type, learned)
        if success is not None:
            await self.coordination.succeeded(success.spec.id)
        if plan.key_id is not None and self.settings.daily_budget_usd > 0:
            await self.coordination.spend(plan.key_id, dt.datetime.now(dt.UTC).date(), cost_total)
        return cost_total

    async def feedback(self, execution_id: uuid.UUID, feedback: schemas.Feedback) -> schemas.FeedbackAccepted:
        """Store a caller's outcome score and fold it into the model's quality statistics.

        Raises:
            ProblemError: 404 for an unknown execution; 409 for one that produced no answer.
        """
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
        await self.coordination.put_stats(head.task_type, {head.model_id: stats})
        return schemas.FeedbackAccepted(
            execution_id=execution_id, model=head.model_id, task_type=head.task_type,
            quality_mean=round(stats.quality_mean, 6), quality_samples=stats.quality_n,
        )  # fmt: skip


def _recommendations(
    candidates: list[Candidate], strategy: str, rng: random.Random, cooling: Mapping[str, float]
) -> list[schemas.Recommendation]:
    return [
        schemas.Recommendation(
            model=r.model_id,
            utility=r.utility,
            expected_quality=r.expected_quality,
            expected_latency_ms=r.expected_latency_ms,
            expected_cost_usd=r.expected_cost_usd,
            success_rate=r.success_rate,
            samples=r.samples,
            confidence=r.confidence,
            reason=r.reason,
            cooling_down=r.model_id in cooling,
        )
        for r in recommend(candidates, strategy, rng)
    ]


def msg_to_dict(message: schemas.Message) -> dict[str, Any]:
    """A message as the upstream expects it (no null fields)."""
    out: dict[str, Any] = {"role": message.role, "content": message.content}
    if message.name is not None:
        out["name"] = message.name
    return out


def msgspec_to_dict(value: Any) -> dict[str, Any]:
    """A Struct's fields as a dict."""
    built: dict[str, Any] = msgspec.to_builtins(value)
    return built
