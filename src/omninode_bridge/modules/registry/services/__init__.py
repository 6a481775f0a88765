"""The registry's services: the node catalog and its encoded answers, health checking, blocking queries, the MCP
server registry and the tool-capture proxy."""

from __future__ import annotations

from omninode_bridge.modules.registry.services._addresses import AddressRefused, check_address, registered_hosts
from omninode_bridge.modules.registry.services._answers import Answer, AnswerCache
from omninode_bridge.modules.registry.services._blocking import WAIT_PATTERN, parse_wait
from omninode_bridge.modules.registry.services._captures import CaptureWriter, ToolCapture, ToolCaptureSink
from omninode_bridge.modules.registry.services._catalog import Catalog, NodeQuery, node_out, ttl_key
from omninode_bridge.modules.registry.services._changes import ChangeFeed
from omninode_bridge.modules.registry.services._exchange import Exchange, ProxyService
from omninode_bridge.modules.registry.services._health import HealthChecker, Lease, http_status
from omninode_bridge.modules.registry.services._mcp import McpRegistry
from omninode_bridge.modules.registry.services._proxy import Instance, InstanceCache

__all__ = [
    "WAIT_PATTERN",
    "AddressRefused",
    "Answer",
    "AnswerCache",
    "CaptureWriter",
    "Catalog",
    "ChangeFeed",
    "Exchange",
    "HealthChecker",
    "Instance",
    "InstanceCache",
    "Lease",
    "McpRegistry",
    "NodeQuery",
    "ProxyService",
    "ToolCapture",
    "ToolCaptureSink",
    "check_address",
    "http_status",
    "node_out",
    "parse_wait",
    "registered_hosts",
    "ttl_key",
]
