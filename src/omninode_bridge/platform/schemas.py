"""Request and response bodies of the platform endpoints."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated, Any, Literal

import msgspec

from omninode_bridge.core.health import ComponentHealth
from omninode_bridge.core.inputs import AwareDatetime, Namespace, anchored, text

__all__ = [
    "ApiKey",
    "ApiKeyCreate",
    "ApiKeyCreated",
    "AuditEntry",
    "AuditPage",
    "ComponentHealth",
    "Health",
    "Principal",
]

ScopeName = Annotated[str, msgspec.Meta(pattern=anchored(r"[a-z][a-z0-9_.-]{0,49}"), min_length=1, max_length=50)]


class Principal(msgspec.Struct, frozen=True):
    """The authenticated caller of a request (``request.user``)."""

    key_id: uuid.UUID
    name: str
    scopes: frozenset[str]
    namespaces: frozenset[str] | None = None

    def has_scope(self, scope: str) -> bool:
        """``admin`` grants every scope."""
        return "admin" in self.scopes or scope in self.scopes

    def may_use_namespace(self, namespace: str) -> bool:
        """True unless the key is restricted to other namespaces."""
        return self.namespaces is None or namespace in self.namespaces


class ApiKeyCreate(msgspec.Struct, forbid_unknown_fields=True):
    """A new API key."""

    name: Annotated[str, text(min_length=1, max_length=100, description="Who or what uses the key.")]
    scopes: Annotated[list[ScopeName], msgspec.Meta(min_length=1, max_length=50, description="admin, or module names.")]
    namespaces: (
        Annotated[list[Namespace], msgspec.Meta(max_length=1000, description="Restrict the key to these namespaces.")]
        | None
    ) = None
    expires_at: Annotated[
        AwareDatetime | None, msgspec.Meta(description="Optional expiry, with a timezone offset or Z.")
    ] = None


class ApiKey(msgspec.Struct):
    """An API key as listed; never includes the key itself."""

    id: uuid.UUID
    name: str
    prefix: str
    scopes: list[str]
    namespaces: list[str] | None
    seeded: bool
    created_at: dt.datetime
    expires_at: dt.datetime | None
    revoked_at: dt.datetime | None
    active: bool


class ApiKeyCreated(ApiKey):
    """The response to creating a key: the only time the plain key is shown."""

    key: str = ""


class AuditEntry(msgspec.Struct):
    """One audit log entry."""

    id: int
    occurred_at: dt.datetime
    action: str
    outcome: str
    key_id: uuid.UUID | None
    client_ip: str | None
    method: str | None
    path: str | None
    correlation_id: str | None
    detail: dict[str, Any]


class AuditPage(msgspec.Struct):
    """A page of audit entries, newest first; pass ``next_cursor`` as ``cursor`` for the next page."""

    items: list[AuditEntry]
    next_cursor: str | None


class Health(msgspec.Struct):
    """Overall health: unhealthy when the database is down, degraded when Kafka or Redis is.

    ``components`` also holds each module that reports its own health (``Module.health``), by module name; a
    module's status is its own and does not change the overall ``status``.
    """

    status: Literal["healthy", "degraded", "unhealthy"]
    components: dict[str, ComponentHealth]
    version: str
    uptime_seconds: float
