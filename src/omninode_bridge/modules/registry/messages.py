"""The events the registry publishes on ``omninode_bridge_registry_v1`` (through the outbox, in the transaction
of the change): a node registered (or updated), its health status changed, it was deregistered."""

from __future__ import annotations

import msgspec

__all__ = [
    "NODE_DEREGISTERED",
    "NODE_REGISTERED",
    "NODE_STATUS_CHANGED",
    "REGISTRY_TOPIC",
    "NodeDeregistered",
    "NodeRegistered",
    "NodeStatusChanged",
]

REGISTRY_TOPIC = "omninode_bridge_registry_v1"
NODE_REGISTERED = "NodeRegistered"
NODE_STATUS_CHANGED = "NodeStatusChanged"
NODE_DEREGISTERED = "NodeDeregistered"


class NodeRegistered(msgspec.Struct, kw_only=True):
    """A node registered, or re-registered with changed attributes (events of a node are keyed by its id)."""

    node_id: str
    name: str
    node_type: str
    version: str
    capabilities: list[dict[str, str]]
    status: str
    index: int


class NodeStatusChanged(msgspec.Struct, kw_only=True):
    """A node's health moved between passing, warning and critical."""

    node_id: str
    name: str
    previous: str
    status: str
    output: str
    index: int


class NodeDeregistered(msgspec.Struct, kw_only=True):
    """A node left the catalog: deregistered by a client, or critical past ``deregister_critical_after``."""

    node_id: str
    name: str
    reason: str
    index: int
