"""The model executor: route, call with failover, measure, score, store, publish, learn.

:meth:`ModelExecutor.prepare` does everything that can refuse a request (validation, catalog, budget,
cooldowns) before anything is sent upstream or a stream is opened; :meth:`ModelExecutor.run` calls the models.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import random
import time
import uuid
from typing import Any

import structlog

from omninode_bridge.core.db import Database
from omninode_bridge.core.errors import ProblemError
from omninode_bridge.core.events import EventPublisher
from omninode_bridge.core.inputs import InputError
from omninode_bridge.modules.metrics import schemas
from omninode_bridge.modules.metrics.contract import ModelsContract, ModelSpec
from omninode_bridge.modules.metrics.services import instruments
from omninode_bridge.modules.metrics.services.aggregate import StatsAggregator
from omninode_bridge.modules.metrics.services.coordination import Coordination, Snapshot
from omninode_bridge.modules.metrics.services.judge import Judged, judge
from omninode_bridge.modules.metrics.services.plan import (
    Delta,
    ExecutionFailed,
    Plan,
    Redact,
    Tried,
    failure,
    msg_to_dict,
    msgspec_to_dict,
    recommendations_of,
)
from omninode_bridge.modules.metrics.services.quality import CheckResult, Score, score
from omninode_bridge.modules.metrics.services.recording import Recorder
from omninode_bridge.modules.metrics.services.router import Candidate, Constraints, observe, rank
from omninode_bridge.modules.metrics.services.stats import ModelStats
from omninode_bridge.modules.metrics.services.store import MetricsStore
from omninode_bridge.modules.metrics.services.upstream import Call, UpstreamClient, UpstreamError
from omninode_bridge.modules.metrics.settings import MetricsSettings

__all__ = ["ExecutionFailed", "ModelExecutor", "Plan", "Redact"]

log = structlog.get_logger(__name__)

#: Output tokens assumed when pricing a model never measured and no max_tokens is given.
_ASSUMED_OUTPUT_TOKENS = 256
#: Age of the recommendations an /execute answer may carry.
_RECOMMEND_TTL = 0.5


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
        self.aggregator = StatsAggregator(
            database, alpha=settings.latency_alpha, interval_seconds=settings.stats_flush_ms / 1000
        )
        self.recorder = Recorder(settings, database, publisher, coordination, redact, self.aggregator)
        self.rng = rng or random.Random()  # noqa: S311 - exploration, not security
        self.background: set[asyncio.Task[None]] = set()
        # The recommendations an /execute answer carries, per (task type, strategy): recomputed (64 Thompson
        # draws per model) at most every _RECOMMEND_TTL seconds, not on every request. GET /recommendations
        # always computes them afresh.
        self._recommended: dict[tuple[str, str], tuple[float, list[schemas.Recommendation]]] = {}

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
        return await self._complete(task_type, model_ids, await self.coordination.stats(task_type, model_ids))

    async def _complete(
        self, task_type: str, model_ids: list[str], cached: dict[str, ModelStats | None]
    ) -> dict[str, ModelStats]:
        missing = [m for m, s in cached.items() if s is None]
        found = {m: s for m, s in cached.items() if s is not None}
        if missing:
            await self.aggregator.flush()  # the durable copy must hold this process's observations first
            async with self.database.unit_of_work() as uow:
                durable = await MetricsStore(uow).stats(task_type, missing)
            # Models never run are cached as zero too, so executions fold into them from now on.
            rebuilt = {m: durable.get(m) or ModelStats() for m in missing}
            await self.coordination.put_stats(task_type, rebuilt)
            found.update(rebuilt)
        return {m: found.get(m) or ModelStats() for m in model_ids}

    async def recommendations(self, task_type: str, strategy: str) -> list[schemas.Recommendation]:
        """The models of a task type ranked for a strategy (empty when none serves it)."""
        specs = self.catalog.serving(task_type)
        ids = [m.id for m in specs]
        stats = await self.stats(task_type, ids)
        cooling = await self.coordination.cooling(ids)
        candidates = [Candidate(m.id, stats[m.id], m.price.cost(500, _ASSUMED_OUTPUT_TOKENS)) for m in specs]
        return recommendations_of(candidates, strategy, self.rng, cooling)

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
        budget_day = dt.datetime.now(dt.UTC).date() if self.settings.daily_budget_usd > 0 and key_id else None
        spend = (key_id, budget_day) if key_id and budget_day else None
        plan = Plan(
            execution_id=uuid.uuid4(), task_type=request.task_type, strategy=request.strategy,
            routed=request.model is None, stream=request.stream, call=call, order=[], skipped=[], key_id=key_id,
            correlation_id=correlation_id, metadata=request.metadata or {}, input_estimate=input_estimate,
        )  # fmt: skip
        if len(specs) == 1 and not request.stream:
            # One candidate: its slot is taken with the routing read (one Redis round trip instead of two).
            # Not for streams: their run starts only once the response does, the slot would wait unguarded.
            only = specs[0]
            snapshot, lease, asked = await self.coordination.start(
                request.task_type, only.id, only.max_concurrency, spend=spend, even_if_cooling=not plan.routed
            )
            if asked:
                plan.first_slot = (only.id, lease)
        else:
            snapshot = await self.coordination.snapshot(request.task_type, [m.id for m in specs], spend)
        try:
            if budget_day is not None and key_id is not None:
                await self._check_budget(key_id, budget_day, snapshot.spent)
            await self._order(plan, specs, request.constraints, snapshot)
        except BaseException:
            await self.release_first_slot(plan)
            raise
        return plan

    async def release_first_slot(self, plan: Plan) -> None:
        """Give back the slot :meth:`prepare` took, for a plan that will not run."""
        slot, plan.first_slot = plan.first_slot, None
        if slot is not None and slot[1] is not None:
            with contextlib.suppress(Exception):
                await self.coordination.release(slot[0], slot[1])

    async def _check_budget(self, key_id: uuid.UUID, today: dt.date, spent: float | None) -> None:
        budget = self.settings.daily_budget_usd
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

    async def _order(
        self, plan: Plan, specs: list[ModelSpec], constraints: schemas.Constraints | None, snapshot: Snapshot
    ) -> None:
        ids = [m.id for m in specs]
        by_id = {m.id: m for m in specs}
        output_guess = plan.call.max_tokens or _ASSUMED_OUTPUT_TOKENS
        stats = await self._complete(plan.task_type, ids, snapshot.stats)
        candidates = [Candidate(m.id, stats[m.id], m.price.cost(plan.input_estimate, output_guess)) for m in specs]
        plan.candidates = candidates
        plan.cooling = cooling = snapshot.cooling
        if not plan.routed:
            plan.order = specs
            return
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
        tried: list[Tried] = []
        attempts = list(plan.skipped)
        leases: list[tuple[str, str]] = []
        delivered = False

        async def forward(delta: str) -> None:
            nonlocal delivered
            delivered = True
            assert on_delta is not None
            await on_delta(delta)

        success: Tried | None = None
        for spec in plan.order:
            if len(tried) >= self.settings.max_attempts:
                break
            taken, plan.first_slot = plan.first_slot, None  # the slot prepare() took for order[0], if any
            if taken is not None and taken[0] != spec.id:
                if taken[1] is not None:
                    leases.append((taken[0], taken[1]))  # not this model's: given back at the end
                taken = None
            if plan.input_estimate + (plan.call.max_tokens or 0) > spec.context_window:
                if taken is not None and taken[1] is not None:
                    leases.append((spec.id, taken[1]))
                attempts.append(schemas.Attempt(model=spec.id, outcome="context_overflow", latency_ms=0.0,
                                                detail="the prompt does not fit its context window"))  # fmt: skip
                continue
            # None from prepare(): the model was at its limit then.
            lease = taken[1] if taken is not None else await self.coordination.acquire(spec.id, spec.max_concurrency)
            if lease is None:
                attempts.append(schemas.Attempt(model=spec.id, outcome="at_capacity", latency_ms=0.0))
                continue
            leases.append((spec.id, lease))  # given back with the rest of the execution's Redis side
            try:
                completion = await (
                    self.client.stream(spec, plan.call, forward) if on_delta is not None
                    else self.client.complete(spec, plan.call)
                )  # fmt: skip
            except UpstreamError as exc:
                tried.append(Tried(spec, exc.latency_ms, error=exc))
                attempts.append(schemas.Attempt(model=spec.id, outcome=exc.error_class, latency_ms=exc.latency_ms,
                                                detail=exc.detail))  # fmt: skip
                instruments.failed(spec.id, plan.task_type, exc.error_class)
                if exc.retryable and await self.coordination.failed(spec.id):
                    log.warning("model cooling down", model=spec.id, seconds=self.settings.cooldown_seconds)
                if not exc.retryable or delivered:
                    break
                continue
            success = Tried(spec, completion.latency_ms, completion=completion)
            tried.append(success)
            attempts.append(schemas.Attempt(model=spec.id, outcome="success", latency_ms=completion.latency_ms))
            break
        total_ms = round((time.perf_counter() - started) * 1000, 3)
        try:
            judges: list[Judged] = []
            quality = (
                await self._score(plan, success.completion.text, judges)
                if success is not None and success.completion is not None else None
            )  # fmt: skip
            cost, written = self.recorder.record(plan, tried, attempts, success, quality, total_ms, leases, judges)
        except BaseException:
            for model_id, lease in leases:  # record() gives them back; it did not get that far
                with contextlib.suppress(Exception):
                    await self.coordination.release(model_id, lease)
            raise
        # The answer is built while PostgreSQL commits the record (its fsync is the longest wait of an
        # execution at one connection) and sent only once the record is durable and the slots are back.
        try:
            await asyncio.sleep(0)  # the write's statement and script go out first
            answer = self._answer(plan, success, attempts, quality, judges, cost, total_ms)
            if answer is not None:
                answer.recommendations = await self._current_recommendations(plan, tried, quality)
        finally:
            try:
                # A record that failed to commit fails the request. Shielded: when the request is cancelled
                # (the client left), the execution did happen; its record and slots are finished, not cut off.
                await asyncio.shield(written)
            except BaseException:
                for model_id, lease in leases:  # the Redis side may not have given them back
                    with contextlib.suppress(Exception):
                        await self.coordination.release(model_id, lease)
                raise
        if answer is None:
            raise failure(plan, attempts)
        return answer

    def _answer(
        self,
        plan: Plan,
        success: Tried | None,
        attempts: list[schemas.Attempt],
        quality: Score | None,
        judges: list[Judged],
        cost: float,
        total_ms: float,
    ) -> schemas.ExecuteResponse | None:
        """The answer of an execution that succeeded (None for one that did not), without recommendations."""
        if success is None or success.completion is None or quality is None:
            return None
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
                checks=[
                    schemas.QualityCheck(name=c.name, passed=c.passed, detail=c.detail, score=c.score)
                    for c in quality.checks
                ],
                judges=[
                    schemas.JudgeCall(
                        model=j.model, score=j.result.score, latency_ms=j.latency_ms, cost_usd=round(j.cost_usd, 10)
                    )
                    for j in judges
                ],
            ),
            recommendations=[],  # filled by run() while the record commits
            finish_reason=done.finish_reason,
        )

    async def _score(self, plan: Plan, text: str, judges: list[Judged]) -> Score:
        """The task type's checks on an answer; its judge checks (if any) each call their model."""
        checks = self.catalog.task_types[plan.task_type].checks
        judged: dict[int, CheckResult] = {}
        for index, check in enumerate(checks):
            spec = self.catalog.model(check.model) if check.kind == "judge" and check.model else None
            if spec is not None:
                one = await judge(self.client, check, spec, plan.call, text)
                judged[index] = one.result
                judges.append(one)
        return score(checks, text, plan.call.response_format, judged)

    async def _current_recommendations(
        self, plan: Plan, tried: list[Tried], quality: Score | None
    ) -> list[schemas.Recommendation]:
        """The recommendations of an /execute answer: the cached ones if fresh, else ranked from the statistics
        the plan read with this execution folded in (no Redis read)."""
        key = (plan.task_type, plan.strategy)
        now = time.monotonic()
        cached = self._recommended.get(key)
        if cached is not None and now - cached[0] < _RECOMMEND_TTL:
            return cached[1]
        if not plan.routed:  # an explicit model: the plan read only its statistics
            return await self.recommendations(plan.task_type, plan.strategy)
        stats = {c.model_id: dataclasses.replace(c.stats) for c in plan.candidates}
        for one in tried:
            if one.spec.id in stats and (one.error is None or one.error.retryable):
                done = one.completion
                observe(
                    stats[one.spec.id], success=done is not None, latency_ms=one.latency_ms,
                    cost_usd=one.spec.price.cost(done.input_tokens, done.output_tokens) if done else 0.0,
                    quality=quality.value if done is not None and quality is not None else None,
                    alpha=self.settings.latency_alpha,
                )  # fmt: skip
        candidates = [dataclasses.replace(c, stats=stats[c.model_id]) for c in plan.candidates]
        ranked = recommendations_of(candidates, plan.strategy, self.rng, plan.cooling)
        self._recommended[key] = (now, ranked)
        return ranked

    async def feedback(self, execution_id: uuid.UUID, feedback: schemas.Feedback) -> schemas.FeedbackAccepted:
        """Store a caller's outcome score and fold it into the model's quality statistics (see
        :meth:`Recorder.feedback`)."""
        return await self.recorder.feedback(execution_id, feedback)
