"""The hooks module: the HookReceiver for agent and service hooks and third-party webhooks.

Endpoints (scope ``hooks`` unless noted): ``POST /hooks``, ``POST /hooks/claude-code`` (Claude Code's hook
JSON as sent, also recognised on ``POST /hooks``), ``POST /hooks/batch``, signed webhooks at
``POST /hooks/{source}`` (sources managed at ``/hooks/sources`` with scope ``admin``), ``GET /hooks/events``,
``GET /hooks/events/{id}``, ``POST /hooks/events/{id}/replay``, ``GET /hooks/sessions``,
``GET /hooks/sessions/{id}``, ``GET /hooks/stats``, the SSE stream ``GET /hooks/stream`` and the page
``GET /hooks/live``. Other modules record tool calls they observe with :meth:`HooksState.record_tool_calls`
(a :class:`schemas.ToolCallPair` each). Accepted hooks are published as ``HookEventReceived`` on
``omninode_bridge_hook_events_v1``; the in-process consumer ``hooks.processor`` maintains sessions, tool
call pairs and statistics. Hooks carry a namespace; namespace-restricted keys see and write only theirs.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from litestar import Router
from litestar.di import Provide

from omninode_bridge.core.events import ConsumerResources
from omninode_bridge.core.module import Module, Resources, background
from omninode_bridge.core.settings import KafkaSettings
from omninode_bridge.modules.hooks import messages, schemas
from omninode_bridge.modules.hooks.consumers import PROCESSOR, HookProcessor
from omninode_bridge.modules.hooks.controllers import (
    HookIngestController,
    HookLiveController,
    HookQueryController,
    WebhookSourceController,
)
from omninode_bridge.modules.hooks.controllers._requests import state_opt
from omninode_bridge.modules.hooks.messages import EVENT_TYPE, HOOK_TOPIC, HookEventReceived
from omninode_bridge.modules.hooks.redaction import REDACTED, Redactor
from omninode_bridge.modules.hooks.schemas import ToolCallPair
from omninode_bridge.modules.hooks.settings import HooksSettings
from omninode_bridge.modules.hooks.state import HooksState

__all__ = [
    "EVENT_TYPE",
    "HOOK_TOPIC",
    "PROCESSOR",
    "REDACTED",
    "HookEventReceived",
    "HooksSettings",
    "HooksState",
    "Redactor",
    "ToolCallPair",
    "build_module",
    "messages",
    "schemas",
]


def build_module(
    settings: HooksSettings, *, redis_url: str, kafka: KafkaSettings, state: HooksState | None = None
) -> Module:
    """The hooks module.

    Args:
        settings: Its settings group.
        redis_url: The Redis its live feed's blocking reader connects to.
        kafka: The Kafka settings its processor's consumer connects with.
        state: Its state, when the composition root hands it to another module too (tool-call captures).
    """
    state = state or HooksState(settings, redis_url)

    @contextlib.asynccontextmanager
    async def processor(resources: Resources) -> AsyncIterator[None]:
        consumers = ConsumerResources(database=resources.database, catalog=resources.catalog,
                                      publisher=resources.publisher)  # fmt: skip
        async with background(HookProcessor(consumers, kafka).run(), "hooks-processor"):
            yield

    router = Router(
        path="/",
        # The sources controller first: its static /hooks/sources paths must win over POST /hooks/{source}.
        route_handlers=[WebhookSourceController, HookQueryController, HookLiveController, HookIngestController],
        opt=state_opt(state),
    )
    return Module(
        name="hooks",
        route_handlers=[router],
        publishes=[HOOK_TOPIC],
        dependencies={"hooks": Provide(lambda: state, sync_to_thread=False)},
        lifespans=[state.lifespan, processor],
    )
