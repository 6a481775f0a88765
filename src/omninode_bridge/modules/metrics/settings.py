"""The metrics module's settings group (``OMNINODE_METRICS_*``, plus ``OMNINODE_MODELS_FILE``)."""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

import msgspec

__all__ = ["MetricsSettings"]


class MetricsSettings(msgspec.Struct, kw_only=True, frozen=True):
    """Model catalog, routing, failover, cooldowns, budgets and what is stored of an execution."""

    env_prefix: ClassVar[str] = "OMNINODE_METRICS_"

    models_file: Annotated[
        str | None,
        msgspec.Meta(
            description="The model catalog (YAML); default: contracts/models.yaml of the repository.",
            extra={"env": "OMNINODE_MODELS_FILE"},
        ),
    ] = None
    store_prompts: Annotated[
        bool,
        msgspec.Meta(
            description="Store the messages and the answer of each execution (redacted like hooks); off: only "
            "the measurements."
        ),
    ] = False
    daily_budget_usd: Annotated[
        float,
        msgspec.Meta(ge=0, description="Cost an API key may spend per UTC day on /execute (0: no budget)."),
    ] = 0.0
    max_attempts: Annotated[
        int, msgspec.Meta(ge=1, le=10, description="Models tried per execution (failover) before giving up.")
    ] = 3
    cooldown_failures: Annotated[
        int, msgspec.Meta(ge=1, description="Consecutive failures of a model that start its cooldown.")
    ] = 3
    cooldown_seconds: Annotated[
        float, msgspec.Meta(gt=0, description="How long a failing model is left out of routing.")
    ] = 5.0
    exploration: Annotated[
        Literal["thompson", "none"],
        msgspec.Meta(
            description="thompson: sample each model's statistics from their posterior (explores models with few "
            "samples); none: always the best mean (no exploration)."
        ),
    ] = "thompson"
    latency_alpha: Annotated[
        float, msgspec.Meta(gt=0, le=1, description="Weight of the newest latency in its moving average (EWMA).")
    ] = 0.2
    concurrency_lease_seconds: Annotated[
        float,
        msgspec.Meta(
            gt=0,
            description="A concurrency slot held by a process that died is freed after this long (longer than "
            "any model timeout).",
        ),
    ] = 600.0
    stats_flush_ms: Annotated[
        int,
        msgspec.Meta(
            ge=1,
            le=60_000,
            description="Longest time the durable routing statistics (PostgreSQL) trail the live copy (Redis): "
            "each process writes its executions' statistics in one batch this often.",
        ),
    ] = 200
