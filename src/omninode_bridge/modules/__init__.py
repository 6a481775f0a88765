"""Feature modules. Each package exposes ``build_module(...)``; :func:`build_modules` hands each its own
settings group (and the few other settings it is given by name) and returns the modules the app registers.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import msgspec

from omninode_bridge.core.contracts import contracts_dir
from omninode_bridge.core.module import Module
from omninode_bridge.modules import (
    codegen,
    eventlog,
    hooks,
    metrics,
    orchestrator,
    reducer,
    registry,
    stamping,
    workflow,
)

if TYPE_CHECKING:
    from omninode_bridge.settings import Settings

__all__ = ["build_modules"]


def build_modules(settings: Settings) -> list[Module]:
    """The feature modules of an app with ``settings``; building them connects to nothing.

    Each issue that adds a module adds its ``build_module`` call here; the app starts them in the order
    their ``requires`` declare.
    """
    contracts = contracts_dir(settings.server.contracts_dir)
    metrics_state = metrics.MetricsState()
    redis_url = settings.redis.url or ""
    hooks_state = hooks.HooksState(settings.hooks, redis_url)
    return [
        eventlog.build_module(settings.kafka.bootstrap_servers or ""),
        codegen.build_module(),
        hooks.build_module(settings.hooks, redis_url=redis_url, kafka=settings.kafka, state=hooks_state),
        orchestrator.build_module(),
        stamping.build_module(
            settings.stamping,
            stamp_secret=settings.security.stamp_secret,
            max_json_bytes=settings.server.max_body_bytes,
            contracts_dir=settings.server.contracts_dir,
        ),
        reducer.build_module(contracts, settings.kafka),
        # Stored prompts are redacted like hooks, with the operator's hooks redaction settings.
        metrics.build_module(settings.metrics, redact=_prompt_redactor(settings.hooks), state=metrics_state),
        # The proxy's captures become hook tool-call pairs, behind a port.
        registry.build_module(
            settings.registry, redis_url=redis_url, captures=_HooksToolCaptures(hooks_state), requires=("hooks",)
        ),
        # AI tasks of workflows go through the metrics executor (routed, measured, fed back), behind a port.
        workflow.build_module(
            settings.workflow,
            ai=_MetricsAiTasks(metrics_state),
            contracts_dir=settings.server.contracts_dir,
            requires=("metrics",),
        ),
    ]


def _prompt_redactor(settings: hooks.HooksSettings) -> metrics.Redact:
    """The hooks module's redactor (the operator's key list and secret shapes) as the metrics module's port."""
    redactor = hooks.Redactor.from_settings(settings)
    return lambda value: redactor.redact(value)[0]


class _MetricsAiTasks:
    """The metrics module's executor as the workflow module's :class:`workflow.AiTasks` port."""

    def __init__(self, state: metrics.MetricsState) -> None:
        self.state = state

    async def execute(self, params: dict[str, Any], correlation_id: str) -> dict[str, Any]:
        executor = self.state.running()
        request = msgspec.convert(params, metrics.ExecuteRequest)
        plan = await executor.prepare(request, key_id=None, correlation_id=correlation_id)
        result = await executor.run(plan)
        out: dict[str, Any] = msgspec.to_builtins(result)
        out.pop("recommendations", None)  # the router's view of the moment, not the task's output
        return out

    async def feedback(self, execution_id: str, score: float) -> None:
        await self.state.running().feedback(uuid.UUID(execution_id), metrics.Feedback(score=score, label="workflow"))


class _HooksToolCaptures:
    """The hooks module's tool-call ingest as the registry's :class:`registry.ToolCaptureSink` port."""

    #: The hooks ``source`` of proxied calls.
    SOURCE = "registry.proxy"

    def __init__(self, state: hooks.HooksState) -> None:
        self.state = state

    async def record(self, captures: Sequence[registry.ToolCapture]) -> None:
        await self.state.record_tool_calls(
            [
                hooks.ToolCallPair(
                    source=self.SOURCE,
                    tool_name=c.tool,
                    tool_call_id=c.call_id,
                    correlation_id=c.correlation_id,
                    started_at=c.started_at,
                    finished_at=c.finished_at,
                    pre=c.pre_data(),
                    post=c.post_data(),
                    key_id=c.key_id,
                )
                for c in captures
            ]
        )
