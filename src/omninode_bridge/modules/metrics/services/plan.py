"""What one execution carries from its checks to its record: the plan, the models tried, its failure."""

from __future__ import annotations

import random
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import msgspec

from omninode_bridge.core.errors import ProblemError
from omninode_bridge.modules.metrics import schemas
from omninode_bridge.modules.metrics.contract import ModelSpec
from omninode_bridge.modules.metrics.services.router import Candidate, recommend
from omninode_bridge.modules.metrics.services.upstream import Call, Completion, UpstreamError

__all__ = [
    "Delta",
    "ExecutionFailed",
    "Plan",
    "Redact",
    "Tried",
    "failure",
    "msg_to_dict",
    "msgspec_to_dict",
    "recommendations_of",
]

#: Replaces secrets in a stored prompt (the hooks module's redactor, handed in by the composition root).
Redact = Callable[[Any], Any]
#: Receives each text delta of a streamed answer.
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
    cooling: dict[str, float] = field(default_factory=dict)
    #: The slot of ``order[0]`` taken with the routing read (a one-model plan): (model, lease or None when the
    #: model was at its limit); None when ``run`` takes its slots itself.
    first_slot: tuple[str, str | None] | None = None


@dataclass(slots=True)
class Tried:
    """One model called for a plan: its latency and its answer or its error."""

    spec: ModelSpec
    latency_ms: float
    error: UpstreamError | None = None
    completion: Completion | None = None


def failure(plan: Plan, attempts: list[schemas.Attempt]) -> ExecutionFailed:
    """The problem of a plan no model answered: the upstream's refusal (422), every model busy (503), or
    every model failed (502); its ``attempts`` say what happened to each."""
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


def recommendations_of(
    candidates: list[Candidate], strategy: str, rng: random.Random, cooling: Mapping[str, float]
) -> list[schemas.Recommendation]:
    """The candidates ranked for ``strategy`` as the response's recommendations."""
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
