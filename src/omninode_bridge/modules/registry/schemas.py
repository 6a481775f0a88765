"""HTTP bodies of the registry's own API (``/registry/...``); the Consul-compatible bodies are in ``consul.py``
and the MCP registry's in ``mcp.py``."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

import msgspec

from omninode_bridge.core.inputs import Identifier, anchored, text
from omninode_bridge.modules.registry.semver import VERSION_PATTERN

__all__ = [
    "SERVICE_NAME",
    "Capability",
    "CapabilitySummary",
    "Check",
    "Heartbeat",
    "NodeIn",
    "NodeOut",
    "NodePage",
    "ToolHit",
    "ToolIn",
    "ToolPage",
]

NodeType = Literal["orchestrator", "reducer", "effect", "compute", "service", "mcp_server"]
Status = Literal["passing", "warning", "critical"]
#: A service or capability name: letters, digits, ``_``, ``.``, ``-``.
SERVICE_NAME = r"[a-zA-Z0-9_.-]{1,255}"
ServiceName = Annotated[str, msgspec.Meta(pattern=anchored(SERVICE_NAME), min_length=1, max_length=255)]
SemVer = Annotated[
    str, msgspec.Meta(pattern=anchored(VERSION_PATTERN), max_length=128, description="A semantic version (2.0.0).")
]
Label = Annotated[str, text(min_length=1, max_length=255)]
MetaKey = Annotated[str, msgspec.Meta(pattern=anchored(r"[a-zA-Z0-9_-]{1,128}"), max_length=128)]
MetaValue = Annotated[str, text(max_length=512)]
Host = Annotated[
    str,
    msgspec.Meta(
        pattern=anchored(r"[a-zA-Z0-9.:\[\]-]{1,253}"), max_length=253, description="Host name or IP address."
    ),
]
HttpUrl = Annotated[str, msgspec.Meta(pattern=anchored(r"https?://[^\s\x00-\x1f\x7f]{1,2040}"), max_length=2048)]
Seconds = Annotated[float, msgspec.Meta(gt=0, le=86400, description="Seconds.")]


class Capability(msgspec.Struct, forbid_unknown_fields=True):
    """A capability a node provides, at a semantic version."""

    name: ServiceName
    version: SemVer


class ToolIn(msgspec.Struct, forbid_unknown_fields=True, rename={"input_schema": "inputSchema"}):
    """A tool as MCP's ``tools/list`` reports it."""

    name: Annotated[str, msgspec.Meta(pattern=anchored(r"[a-zA-Z0-9_.-]{1,128}"), max_length=128)]
    description: Annotated[str, text(max_length=4096, multiline=True)] = ""
    input_schema: dict[str, Any] = msgspec.field(default_factory=lambda: {"type": "object"})


class Check(msgspec.Struct, forbid_unknown_fields=True):
    """A health check: ``ttl`` (the node heartbeats) or ``http`` (the registry GETs the URL every interval)."""

    kind: Literal["ttl", "http"]
    ttl: (
        Annotated[Seconds, msgspec.Meta(description="TTL checks: critical after this long without heartbeat.")] | None
    ) = None
    http: Annotated[HttpUrl, msgspec.Meta(description="HTTP checks: on the node's own address.")] | None = None
    interval: Seconds = 10.0
    timeout: Seconds = 5.0
    deregister_critical_after: (
        Annotated[Seconds, msgspec.Meta(description="Remove the node once critical this long.")] | None
    ) = None
    status: Annotated[Status, msgspec.Meta(description="Status until the first heartbeat or check.")] = "critical"


class NodeIn(msgspec.Struct, forbid_unknown_fields=True):
    """A node to register (or update: registration is idempotent by ``node_id``)."""

    node_id: Identifier
    name: Annotated[ServiceName, msgspec.Meta(description="The service name (instances share it).")]
    node_type: NodeType
    version: SemVer
    address: Host | None = None
    port: Annotated[int, msgspec.Meta(ge=1, le=65535)] | None = None
    url: HttpUrl | None = None
    tags: Annotated[list[Label], msgspec.Meta(max_length=64)] = msgspec.field(default_factory=list)
    meta: Annotated[dict[MetaKey, MetaValue], msgspec.Meta(max_length=64)] = msgspec.field(default_factory=dict)
    capabilities: Annotated[list[Capability], msgspec.Meta(max_length=128)] = msgspec.field(default_factory=list)
    tools: Annotated[list[ToolIn], msgspec.Meta(max_length=512)] = msgspec.field(default_factory=list)
    check: Check | None = None


class Heartbeat(msgspec.Struct, forbid_unknown_fields=True):
    """A TTL heartbeat; without a body it is a pass."""

    status: Status = "passing"
    output: Annotated[str, text(max_length=4096, multiline=True)] = ""


class NodeOut(msgspec.Struct):
    """A registered node and its health."""

    node_id: str
    name: str
    node_type: str
    version: str
    address: str | None
    port: int | None
    url: str | None
    tags: list[str]
    meta: dict[str, str]
    capabilities: list[dict[str, str]]
    tools: list[dict[str, Any]]
    check: dict[str, Any] | None
    status: str
    output: str
    status_changed_at: dt.datetime
    registered_at: dt.datetime
    updated_at: dt.datetime
    create_index: int
    modify_index: int


class NodePage(msgspec.Struct):
    """A page of nodes, oldest registration first; ``index`` is the query's blocking index."""

    items: list[NodeOut]
    next_cursor: str | None
    index: int


class CapabilitySummary(msgspec.Struct):
    """A capability across the catalog: its versions and how many (passing) nodes provide it."""

    name: str
    versions: list[str]
    providers: int
    passing: int


class ToolHit(msgspec.Struct):
    """A tool found by search, with its provider and how to reach it."""

    name: str
    description: str
    input_schema: dict[str, Any]
    rank: float
    node_id: str
    provider: str
    node_type: str
    status: str
    address: str | None
    port: int | None
    url: str | None


class ToolPage(msgspec.Struct):
    """Tools ranked by relevance."""

    items: list[ToolHit]


class ConsulCheckUpdate(msgspec.Struct, rename="pascal"):
    """``PUT /v1/agent/check/update/{id}``: Consul's body."""

    status: Status
    output: Annotated[str, text(max_length=4096, multiline=True)] = ""
