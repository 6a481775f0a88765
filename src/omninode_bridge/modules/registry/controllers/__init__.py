"""The registry's controllers: its own API, the Consul-compatible subset, the MCP server registry."""

from __future__ import annotations

from omninode_bridge.modules.registry.controllers._consul import ConsulController
from omninode_bridge.modules.registry.controllers._mcp import McpController
from omninode_bridge.modules.registry.controllers._nodes import INDEX_HEADER, NodeController

__all__ = ["INDEX_HEADER", "ConsulController", "McpController", "NodeController"]
