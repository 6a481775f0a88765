"""Route guards and accessors of the authenticated principal."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from litestar.connection import ASGIConnection
from litestar.exceptions import PermissionDeniedException
from litestar.handlers.base import BaseRouteHandler

from omninode_bridge.platform.identity import principal_of
from omninode_bridge.platform.security._audit import Auditor
from omninode_bridge.platform.state import platform_state


def require_scope(
    scope_name: str,
) -> Callable[[ASGIConnection[Any, Any, Any, Any], BaseRouteHandler], Awaitable[None]]:
    """A Litestar guard admitting keys with ``scope_name`` (or ``admin``); others get an audited 403."""

    async def guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
        if not principal_of(connection).has_scope(scope_name):
            await _forbid(connection, {"required_scope": scope_name}, f"This API key lacks the '{scope_name}' scope.")

    return guard


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
