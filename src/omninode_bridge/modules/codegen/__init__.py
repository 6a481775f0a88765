"""The codegen module: request-reply over the seed's codegen topics and session status timelines."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import AsyncIterator

from litestar.di import Provide

from omninode_bridge.core.module import Module, Resources, Started
from omninode_bridge.modules.codegen import messages, schemas
from omninode_bridge.modules.codegen.consumers import build_router
from omninode_bridge.modules.codegen.controllers import CodegenController
from omninode_bridge.modules.codegen.services import KINDS, STATUS_TOPIC, PendingReplies, RequestReply

__all__ = ["KINDS", "STATUS_TOPIC", "build_module", "messages", "schemas"]


def build_module() -> Module:
    """The codegen module: its endpoints get the request-reply gateway, its listener the waiting requests."""
    replies = PendingReplies()  # shared by the response listener and the gateway of this app
    gateway: Started[RequestReply] = Started("the codegen gateway")

    @contextlib.asynccontextmanager
    async def lifespan(resources: Resources) -> AsyncIterator[None]:
        gateway.set(RequestReply(resources.publisher, replies, resources.catalog.request_reply.timeout_ms))
        yield

    return Module(
        name="codegen",
        route_handlers=[CodegenController],
        kafka_routers=[functools.partial(build_router, replies=replies)],
        publishes=[STATUS_TOPIC, *(request for request, _, _, _ in KINDS.values())],
        dependencies={"codegen": Provide(gateway.get, sync_to_thread=False)},
        lifespans=[lifespan],
    )
