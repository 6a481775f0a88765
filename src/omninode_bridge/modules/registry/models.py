"""Registry tables: node registrations (kept as tombstones for a while after deregistration, so blocking
queries see removals), the tool index, and published MCP server versions."""

from __future__ import annotations

import datetime as dt
from typing import Any

from advanced_alchemy.base import DefaultBase
from advanced_alchemy.types import DateTimeUTC
from sqlalchemy import BigInteger, Computed, Float, Identity, Index, Integer, Sequence, String, Text, func
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, TSVECTOR
from sqlalchemy.orm import Mapped, mapped_column

__all__ = ["INDEX_SEQUENCE", "McpServerVersion", "NodeRegistration", "RegistryTool"]

#: Every change of the catalog takes the next value: Consul's ``ModifyIndex``, monotonic across processes.
INDEX_SEQUENCE = Sequence("registry_index_seq", metadata=DefaultBase.metadata)


class NodeRegistration(DefaultBase):
    """A registered node (seed 001's ``node_registrations``) with its health check and current status."""

    __tablename__ = "node_registrations"
    __table_args__ = (
        Index("uq_node_registrations_node_id", "node_id", unique=True),
        Index("ix_node_registrations_name", "name"),
        Index("ix_node_registrations_capabilities", "capabilities", postgresql_using="gin"),
        Index("ix_node_registrations_tags", "tags", postgresql_using="gin"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    node_id: Mapped[str] = mapped_column(String(255))
    name: Mapped[str] = mapped_column(String(255))
    node_type: Mapped[str] = mapped_column(String(32))
    version: Mapped[str] = mapped_column(String(128))
    address: Mapped[str | None] = mapped_column(String(255))
    port: Mapped[int | None] = mapped_column(Integer)
    url: Mapped[str | None] = mapped_column(Text)
    tags: Mapped[list[str]] = mapped_column(ARRAY(String(255)))
    meta: Mapped[dict[str, str]] = mapped_column(JSONB)
    capabilities: Mapped[list[dict[str, str]]] = mapped_column(JSONB)
    tools: Mapped[list[dict[str, Any]]] = mapped_column(JSONB)
    check_kind: Mapped[str] = mapped_column(String(8))  # ttl, http or none
    check_ttl_seconds: Mapped[float | None] = mapped_column(Float)
    check_http: Mapped[str | None] = mapped_column(Text)
    check_interval_seconds: Mapped[float | None] = mapped_column(Float)
    check_timeout_seconds: Mapped[float | None] = mapped_column(Float)
    deregister_critical_after_seconds: Mapped[float | None] = mapped_column(Float)
    status: Mapped[str] = mapped_column(String(16))
    output: Mapped[str] = mapped_column(Text, default="")
    status_changed_at: Mapped[dt.datetime] = mapped_column(DateTimeUTC(timezone=True))
    last_heartbeat_at: Mapped[dt.datetime | None] = mapped_column(DateTimeUTC(timezone=True))
    last_checked_at: Mapped[dt.datetime | None] = mapped_column(DateTimeUTC(timezone=True))
    create_index: Mapped[int] = mapped_column(BigInteger)
    modify_index: Mapped[int] = mapped_column(BigInteger)
    registered_at: Mapped[dt.datetime] = mapped_column(DateTimeUTC(timezone=True), server_default=func.now())
    updated_at: Mapped[dt.datetime] = mapped_column(DateTimeUTC(timezone=True), server_default=func.now())
    deleted_at: Mapped[dt.datetime | None] = mapped_column(DateTimeUTC(timezone=True))


class RegistryTool(DefaultBase):
    """A tool a node reported (the MCP ``tools/list`` shape), searchable by full text."""

    __tablename__ = "registry_tools"
    __table_args__ = (
        Index("ix_registry_tools_search", "search", postgresql_using="gin"),
        Index("ix_registry_tools_node_id", "node_id"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    node_id: Mapped[str] = mapped_column(String(255))
    name: Mapped[str] = mapped_column(String(255))
    description: Mapped[str] = mapped_column(Text, default="")
    input_schema: Mapped[dict[str, Any]] = mapped_column(JSONB)
    search: Mapped[str] = mapped_column(
        TSVECTOR,
        Computed(
            "setweight(to_tsvector('english', replace(name, '_', ' ')), 'A') || "
            "setweight(to_tsvector('english', description), 'B')",
            persisted=True,
        ),
    )


class McpServerVersion(DefaultBase):
    """One published version of an MCP server's ``server.json`` (the official registry's v0 shape)."""

    __tablename__ = "mcp_server_versions"
    __table_args__ = (Index("uq_mcp_server_versions", "name", "version", unique=True),)

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    version: Mapped[str] = mapped_column(String(255))
    description: Mapped[str] = mapped_column(String(100))
    server: Mapped[dict[str, Any]] = mapped_column(JSONB)
    is_latest: Mapped[bool]
    published_at: Mapped[dt.datetime] = mapped_column(DateTimeUTC(timezone=True), server_default=func.now())
    updated_at: Mapped[dt.datetime] = mapped_column(DateTimeUTC(timezone=True), server_default=func.now())
