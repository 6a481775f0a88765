"""Who is asking: the authenticated principal of a request and the audit actor of an action."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException

from omninode_bridge.platform import schemas

__all__ = ["Actor", "principal_of", "principal_or_none"]

#: Longest request path an audit entry keeps.
_PATH_CHARS = 2048


def principal_of(connection: ASGIConnection[Any, Any, Any, Any]) -> schemas.Principal:
    """The authenticated principal of a request (set by :class:`SecurityMiddleware`)."""
    user = principal_or_none(connection)
    if user is None:
        raise NotAuthorizedException("A valid API key is required.")
    return user


def principal_or_none(connection: ASGIConnection[Any, Any, Any, Any]) -> schemas.Principal | None:
    """The principal of a request to an :data:`OPTIONAL_AUTH` endpoint, or None when no key was presented."""
    user = connection.scope.get("user")
    return user if isinstance(user, schemas.Principal) else None


@dataclass(frozen=True, slots=True)
class Actor:
    """Who asked for an action, as an audit entry records it.

    Attributes:
        key_id: The API key of the request (None: no key, or a command-line action).
        client_ip: The client address (the one the security middleware resolved behind trusted proxies).
        method: HTTP method.
        path: Request path (at most 2048 characters).
        correlation_id: The request's correlation id.
    """

    key_id: uuid.UUID | None
    client_ip: str | None = None
    method: str | None = None
    path: str | None = None
    correlation_id: str | None = None

    @classmethod
    def from_request(cls, connection: ASGIConnection[Any, Any, Any, Any]) -> Actor:
        """The actor of a request (or of any ASGI connection, before authentication: no key then)."""
        principal = principal_or_none(connection)
        state = connection.scope.get("state", {})
        client = connection.scope.get("client")
        return cls(
            key_id=principal.key_id if principal is not None else None,
            client_ip=state.get("client_ip") or (client[0] if client else None),
            method=str(connection.scope.get("method") or "") or None,
            path=connection.scope["path"][:_PATH_CHARS],
            correlation_id=state.get("correlation_id"),
        )

    def audit_fields(self) -> dict[str, Any]:
        """The keyword arguments of :meth:`AuditService.add` and :func:`record_audit` this actor fills."""
        return {
            "key_id": self.key_id,
            "client_ip": self.client_ip,
            "method": self.method,
            "path": self.path,
            "correlation_id": self.correlation_id,
        }
