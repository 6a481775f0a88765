"""Request helpers of the hooks endpoints: body checks, namespaces, and the module state of a request.

``before_request`` hooks run before dependency injection, so they find the module's state in their
route's ``opt``, which :func:`state_opt` fills for the hooks router of each app.
"""

from __future__ import annotations

from typing import Any

from litestar import Request

from omninode_bridge import platform
from omninode_bridge.core.errors import ProblemError
from omninode_bridge.modules.hooks.schemas import DEFAULT_NAMESPACE
from omninode_bridge.modules.hooks.state import HooksState

__all__ = [
    "check_body_size",
    "check_content_length",
    "hooks_state_of",
    "namespace_for",
    "read_hook_body",
    "read_json_hook",
    "state_opt",
    "visible_namespaces",
]

_STATE = "hooks_state"


def state_opt(state: HooksState) -> dict[str, Any]:
    """The router ``opt`` that hands ``state`` to the hooks' ``before_request`` hooks."""
    return {_STATE: state}


def hooks_state_of(request: Request[Any, Any, Any]) -> HooksState:
    """The hooks state of the route a request matched (see :func:`state_opt`)."""
    state = request.route_handler.opt.get(_STATE)
    if not isinstance(state, HooksState):
        raise TypeError("a hooks route outside the hooks module's router")
    return state


async def check_content_length(request: Request[Any, Any, Any]) -> None:
    """``before_request`` hook: 413 at once when the announced body exceeds the per-hook limit."""
    limit = hooks_state_of(request).settings.max_body_bytes
    announced = request.headers.get("content-length", "")
    if announced.isdigit() and int(announced) > limit:
        raise ProblemError(413, f"A hook body may have at most {limit} bytes; this one announces {announced}.")


def _is_json(content_type: str) -> bool:
    media_type = content_type.partition(";")[0].strip().lower()
    return media_type == "application/json" or (media_type.startswith("application/") and media_type.endswith("+json"))


async def read_hook_body(request: Request[Any, Any, Any]) -> bytes:
    """The raw body of a JSON hook endpoint, once its size and content type are checked.

    A body over the limit is a 413, a body that does not say it is JSON a 415 (``text/plain`` is not parsed
    as JSON).
    """
    await check_content_length(request)
    if not _is_json(request.headers.get("content-type", "")):
        raise ProblemError(
            415,
            "Send the hook as JSON with Content-Type: application/json.",
            headers={"Accept-Post": "application/json"},
        )
    body = await request.body()
    check_body_size(body, hooks_state_of(request).settings.max_body_bytes)
    return body


async def read_json_hook(request: Request[Any, Any, Any]) -> Any:
    """The checked JSON body of a hook endpoint: :func:`read_hook_body`'s checks, then UTF-8, NUL and depth.

    Called from the endpoints' ``before_request`` hooks, so the strict validation that follows runs before
    Litestar's own (lenient) parsing of ``data``.

    Returns:
        The decoded body (cached on the request).
    """
    await read_hook_body(request)
    return await request.json()


async def namespace_for(request: Request[Any, Any, Any], requested: str | None) -> str:
    """The namespace a posted hook goes to, once the key is allowed to write there (else an audited 403).

    Without one named, a key restricted to exactly one namespace writes there; any other key to ``default``.
    """
    if requested is None:
        principal = platform.principal_or_none(request)
        only = principal.namespaces if principal is not None else None
        requested = next(iter(only)) if only is not None and len(only) == 1 else DEFAULT_NAMESPACE
    await platform.require_namespace(request, requested)
    return requested


async def visible_namespaces(request: Request[Any, Any, Any], requested: str | None) -> frozenset[str] | None:
    """The namespaces a read may show: the one asked for (if the key may use it, else a 403), else the
    key's namespaces (None: every namespace)."""
    if requested is not None:
        await platform.require_namespace(request, requested)
        return frozenset({requested})
    principal = platform.principal_or_none(request)
    return principal.namespaces if principal is not None else None


def check_body_size(body: bytes, limit: int) -> None:
    """413 when a body read without a Content-Length exceeds the per-hook limit."""
    if len(body) > limit:
        raise ProblemError(413, f"A hook body may have at most {limit} bytes; this one has {len(body)}.")
