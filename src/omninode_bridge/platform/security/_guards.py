"""Scope and namespace checks of the authenticated principal."""

from __future__ import annotations

from typing import Any

from litestar.connection import ASGIConnection
from litestar.exceptions import PermissionDeniedException

from omninode_bridge.platform.identity import principal_of
from omninode_bridge.platform.security._audit import Auditor
from omninode_bridge.platform.state import platform_state

#: The route ``opt`` key naming the API-key scope a route requires (see :func:`require_scope`).
REQUIRED_SCOPE_OPT = "required_scope"


def require_scope(scope_name: str) -> dict[str, Any]:
    """Route ``opt`` admitting keys with ``scope_name`` (or ``admin``); others get an audited 403.

    Set it on a controller (``opt = require_scope("hooks")``) or a handler (``opt=require_scope("hooks")``);
    :class:`SecurityMiddleware` checks it right after authentication. A Litestar guard would do the same
    at a higher price: Litestar copies the route handler for every guard call, ~4% of a small request.
    """
    return {REQUIRED_SCOPE_OPT: scope_name}


async def require_namespace(connection: ASGIConnection[Any, Any, Any, Any], namespace: str) -> None:
    """Admit the caller to ``namespace`` or raise an audited 403 (keys may be restricted to namespaces).

    Raises:
        PermissionDeniedException: The key is restricted to other namespaces.
    """
    if not principal_of(connection).may_use_namespace(namespace):
        await _forbid(connection, {"namespace": namespace}, f"This API key may not use the namespace '{namespace}'.")


async def _forbid(connection: ASGIConnection[Any, Any, Any, Any], detail: dict[str, str], message: str) -> None:
    """Audit a denied access decision, then raise the 403."""
    await Auditor(platform_state(connection.app).database, connection.scope)("auth.forbidden", "denied", detail=detail)
    raise PermissionDeniedException(message)
