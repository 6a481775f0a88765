"""The codegen module: request-reply over the seed's codegen topics and session status timelines."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from omninode_bridge.core.module import Module, Runtime
from omninode_bridge.modules.codegen import messages, schemas
from omninode_bridge.modules.codegen.consumers import build_router
from omninode_bridge.modules.codegen.controllers import CodegenController
from omninode_bridge.modules.codegen.services import KINDS, STATUS_TOPIC, PendingReplies

__all__ = ["KINDS", "MODULE", "STATUS_TOPIC", "messages", "schemas"]


@contextlib.asynccontextmanager
async def _replies(runtime: Runtime) -> AsyncIterator[None]:
    runtime.extras["codegen_replies"] = PendingReplies()
    yield


MODULE = Module(
    name="codegen",
    route_handlers=[CodegenController],
    kafka_routers=[build_router],
    publishes=[STATUS_TOPIC, *(request for request, _, _, _ in KINDS.values())],
    lifespans=[_replies],
)
