"""The registry module: nodes with health checks and discovery by capability and semantic-version range,
blocking queries, a Consul-compatible API subset, an MCP server registry (the official v0 API shape) and a
tool index across the catalog.

Endpoints (scope ``registry``): ``POST /registry/nodes``, ``GET /registry/nodes``, ``GET|DELETE
/registry/nodes/{id}``, ``PUT /registry/nodes/{id}/heartbeat``, ``GET /registry/capabilities``,
``GET /registry/tools``; the Consul subset under ``/v1/``; ``POST /v0/publish``, ``GET /v0/servers``,
``GET /v0/servers/{name}/versions[/{version}]``; the tool-capture proxy at
``/{proxy prefix}/{service}/{path}``, whose captures leave through the :class:`ToolCaptureSink` port (the hooks
module, wired by ``build_modules``). Changes are published as ``NodeRegistered``,
``NodeStatusChanged`` and ``NodeDeregistered`` on ``omninode_bridge_registry_v1`` through the outbox.

Public interface: :func:`build_module`, the settings group, the event payloads, the semver ranges and the capture
port (:class:`ToolCaptureSink`, :class:`ToolCapture`).
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as package_version

from litestar import Router
from litestar.di import NamedDependency, Provide
from litestar.middleware import DefineMiddleware

from omninode_bridge.core.module import Module
from omninode_bridge.modules.registry import semver
from omninode_bridge.modules.registry.controllers import (
    PROXY_OPT,
    PROXY_PREFIX_OPT,
    ConsulController,
    McpController,
    NodeController,
    ProxyController,
    ReplayAnswers,
)
from omninode_bridge.modules.registry.messages import (
    NODE_DEREGISTERED,
    NODE_REGISTERED,
    NODE_STATUS_CHANGED,
    REGISTRY_TOPIC,
    NodeDeregistered,
    NodeRegistered,
    NodeStatusChanged,
)
from omninode_bridge.modules.registry.services import Catalog, ToolCapture, ToolCaptureSink
from omninode_bridge.modules.registry.settings import RegistrySettings
from omninode_bridge.modules.registry.state import RegistryState

__all__ = [
    "NODE_DEREGISTERED",
    "NODE_REGISTERED",
    "NODE_STATUS_CHANGED",
    "REGISTRY_TOPIC",
    "NodeDeregistered",
    "NodeRegistered",
    "NodeStatusChanged",
    "RegistrySettings",
    "ToolCapture",
    "ToolCaptureSink",
    "build_module",
    "semver",
]


def _bridge_version() -> str:
    try:
        return package_version("omninode-bridge")
    except PackageNotFoundError:
        return "0.0.0"


def build_module(
    settings: RegistrySettings, *, redis_url: str, captures: ToolCaptureSink, requires: tuple[str, ...] = ()
) -> Module:
    """The registry module.

    Args:
        settings: Its settings group.
        redis_url: The Redis its change listener subscribes on.
        captures: Where the proxy's captures are written (a pre/post tool-call pair each).
        requires: Modules to start first (the one behind ``captures``).
    """
    state = RegistryState(settings, redis_url, _bridge_version(), captures)
    proxy = Router(
        path=settings.proxy_prefix,
        route_handlers=[ProxyController],
        # A function, not the state: Litestar copies route options deeply, and a function is copied as itself.
        opt={PROXY_OPT: lambda: state.proxy.get(), PROXY_PREFIX_OPT: settings.proxy_prefix},
        request_max_body_size=settings.proxy_max_body_bytes,
    )
    # The catalog's reads (its own API and the Consul subset) replay the encoded answer of this generation.
    reads = Router(
        path="/",
        route_handlers=[NodeController, ConsulController],
        # A function, not a bound method: Litestar copies the layers deeply, and would copy the state with it.
        middleware=[DefineMiddleware(ReplayAnswers, answers=lambda: state.running_answers())],
    )
    return Module(
        name="registry",
        requires=requires,
        route_handlers=[reads, McpController, proxy],
        publishes=[REGISTRY_TOPIC],
        dependencies={
            # Resolved from the state, not beside it: Litestar resolves independent dependencies of a
            # handler in an anyio task group per request, a tenth of a discovery lookup's CPU.
            "registry": Provide(_catalog_of, sync_to_thread=False),
            "registry_state": Provide(state.provide_state, sync_to_thread=False),
            "mcp": Provide(state.running_mcp, sync_to_thread=False),
        },
        lifespans=[state.lifespan],
    )


def _catalog_of(registry_state: NamedDependency[RegistryState]) -> Catalog:
    return registry_state.running()
