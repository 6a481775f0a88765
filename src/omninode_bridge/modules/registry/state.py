"""The registry module's per-app state, built by :func:`build_module` and filled by its lifespan."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import uuid
from collections.abc import AsyncIterator

import structlog
from redis.asyncio import Redis

from omninode_bridge.core.http1 import StreamPool
from omninode_bridge.core.module import Resources, Started
from omninode_bridge.modules.registry import schemas
from omninode_bridge.modules.registry.services import (
    AnswerCache,
    CaptureWriter,
    Catalog,
    ChangeFeed,
    HealthChecker,
    InstanceCache,
    McpRegistry,
    ProxyService,
    ToolCaptureSink,
)
from omninode_bridge.modules.registry.settings import RegistrySettings

__all__ = ["RegistryState"]

log = structlog.get_logger(__name__)


class RegistryState:
    """What the registry endpoints share in one app.

    Args:
        settings: The registry settings group.
        redis_url: The Redis the change listener subscribes on (a connection of its own).
        version: The bridge's version (its own registration).
        captures: Where the proxy's captures go (the hooks module, through ``build_modules``).
    """

    def __init__(self, settings: RegistrySettings, redis_url: str, version: str, captures: ToolCaptureSink) -> None:
        self.settings = settings
        self.redis_url = redis_url
        self.version = version
        self.captures = captures
        self.proxy: Started[ProxyService] = Started("the tool-capture proxy")
        self.catalog: Started[Catalog] = Started("the node catalog")
        self.checker: Started[HealthChecker] = Started("the registry health checker")
        self.mcp: Started[McpRegistry] = Started("the MCP server registry")
        self.answers: AnswerCache | None = None
        # One registration per app (several apps may share a process, as in tests).
        self.self_id = f"omninode-bridge-{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"

    def running(self) -> Catalog:
        """The catalog (a dependency provider)."""
        return self.catalog.get()

    def running_mcp(self) -> McpRegistry:
        """The MCP server registry (a dependency provider)."""
        return self.mcp.get()

    def running_answers(self) -> AnswerCache | None:
        """The encoded answers of catalog reads while the app runs (None before and after)."""
        return self.answers

    def provide_state(self) -> RegistryState:
        """This state (a dependency provider)."""
        return self

    async def _self_node(self) -> schemas.NodeIn:
        ttl = self.settings.self_ttl_seconds
        return schemas.NodeIn(
            node_id=self.self_id, name="omninode-bridge", node_type="service", version=self.version,
            address=socket.gethostname()[:253], tags=["bridge"], meta={"pid": str(os.getpid())},
            capabilities=[schemas.Capability(name="registry", version="1.0.0")],
            check=schemas.Check(kind="ttl", ttl=ttl, deregister_critical_after=ttl * 4, status="passing"),
        )  # fmt: skip

    async def _keep_alive(self, catalog: Catalog, resources: Resources) -> None:
        """Register this process and heartbeat it at a third of its TTL."""
        registered = False
        while True:
            try:
                if not registered:
                    async with resources.database.unit_of_work() as uow:
                        await catalog.register(uow, await self._self_node())
                    registered = True
                else:
                    await catalog.heartbeat(self.self_id, schemas.Heartbeat())
            except asyncio.CancelledError:
                raise
            except Exception:  # retried at the next beat (database or Redis away)
                registered = False
                log.warning("registry: self-registration heartbeat failed", exc_info=True)
            await asyncio.sleep(self.settings.self_ttl_seconds / 3)

    def _proxy(self, resources: Resources, changes: ChangeFeed) -> ProxyService:
        """The proxy with the process's one upstream connection pool.

        The pool is the small streaming HTTP/1.1 client of ``core.http1``, not httpx: a proxy keeps no cookie jar,
        follows no redirects, uses no environment proxies and no auth flow, and per call httpx's transport cost
        more CPU than the rest of the forward.
        """
        settings = self.settings
        cache = InstanceCache(resources.database, changes, allow_private=settings.allow_private_addresses)
        return ProxyService(
            StreamPool(max_idle=settings.proxy_max_connections), cache,
            CaptureWriter(self.captures, settings.proxy_capture_queue),
            connect_timeout=settings.proxy_connect_timeout_seconds, timeout=settings.proxy_timeout_seconds,
            capture_bytes=settings.proxy_capture_body_bytes, max_body_bytes=settings.proxy_max_body_bytes,
            capture=settings.proxy_capture,
        )  # fmt: skip

    @contextlib.asynccontextmanager
    async def lifespan(self, resources: Resources) -> AsyncIterator[None]:
        """Fill the state; run the change listener, the elected checker and the app's own registration."""
        changes = ChangeFeed(resources.redis)
        catalog = Catalog(resources.database, resources.publisher, resources.redis, changes,
                          allow_private=self.settings.allow_private_addresses)  # fmt: skip
        checker = HealthChecker(
            catalog, resources.database, resources.redis, tick=self.settings.checker_tick_seconds,
            lease_seconds=self.settings.checker_lease_seconds, tombstone_seconds=self.settings.tombstone_seconds,
            allow_private=self.settings.allow_private_addresses,
        )  # fmt: skip
        reader = Redis.from_url(self.redis_url)
        proxy = self._proxy(resources, changes)
        self.catalog.set(catalog)
        self.answers = AnswerCache(changes)
        self.checker.set(checker)
        self.mcp.set(McpRegistry(resources.database))
        self.proxy.set(proxy)
        tasks = [
            asyncio.create_task(changes.listen(reader), name="registry-changes"),
            asyncio.create_task(checker.run(), name="registry-checker"),
            asyncio.create_task(proxy.captures.run(), name="registry-captures"),
        ]
        if self.settings.self_register:
            tasks.append(asyncio.create_task(self._keep_alive(catalog, resources), name="registry-self"))
        try:
            yield
        finally:
            self.proxy.set(None)
            await proxy.captures.drain(5.0)  # what was proxied is recorded before the app stops
            proxy.pool.close()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if self.settings.self_register:
                with contextlib.suppress(Exception):
                    async with resources.database.unit_of_work() as uow:
                        await catalog.deregister(uow, self.self_id, reason="shutdown")
            await reader.aclose()
            self.answers = None
            self.catalog.set(None)
            self.checker.set(None)
            self.mcp.set(None)
