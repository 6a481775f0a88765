"""The registry's controllers: its own API, the Consul-compatible subset, the MCP server registry, the proxy."""

from __future__ import annotations

from omninode_bridge.modules.registry.controllers._consul import ConsulController
from omninode_bridge.modules.registry.controllers._mcp import McpController
from omninode_bridge.modules.registry.controllers._nodes import INDEX_HEADER, NodeController
from omninode_bridge.modules.registry.controllers._proxy import PROXY_OPT, PROXY_PREFIX_OPT, ProxyController
from omninode_bridge.modules.registry.controllers._replay import ReplayAnswers

__all__ = [
    "INDEX_HEADER",
    "PROXY_OPT",
    "PROXY_PREFIX_OPT",
    "ConsulController",
    "McpController",
    "NodeController",
    "ProxyController",
    "ReplayAnswers",
]
