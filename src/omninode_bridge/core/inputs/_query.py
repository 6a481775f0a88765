"""The path and query string of every request: no control characters, and typed values spelled as their type."""

from __future__ import annotations

import datetime as dt
import re
import weakref
from collections.abc import Mapping
from typing import Annotated, Any
from urllib.parse import parse_qsl

import msgspec
from litestar.enums import ScopeType
from litestar.handlers import BaseRouteHandler
from litestar.types import ASGIApp, Receive, Scope, Send

from omninode_bridge.core.inputs._types import (
    _CONTROL,
    InputError,
    anchored,
    cached_per_handler,
    check_datetime_range,
)

# A percent-encoded or raw control character anywhere in a query string.
_QUERY_CONTROL = re.compile(rb"%(?:[01][0-9A-Fa-f]|7[Ff])|[\x00-\x1f\x7f]")


def check_query_and_path(scope: Scope) -> None:
    """Refuse control characters in the request path and the query string, before any handler runs.

    No path segment or query parameter of this API takes control characters, and PostgreSQL refuses NUL,
    so they are a 422 here rather than a 500 in a query.

    Args:
        scope: The ASGI scope.

    Raises:
        InputError: Naming the offending parameter.
    """
    path = scope.get("path", "")
    if _CONTROL.search(path):
        raise InputError("the path holds a control character", field="path", source="path")
    query = scope.get("query_string", b"")
    if query and _QUERY_CONTROL.search(query):
        decoded = parse_qsl(query.decode("latin-1"), keep_blank_values=True, encoding="latin-1")
        name = next((key for key, value in decoded if _CONTROL.search(key) or _CONTROL.search(value)), None)
        raise InputError("a query parameter holds a control character", field=name, source="query")


class InputGuardMiddleware:
    """ASGI middleware applying :func:`check_query_and_path` to every HTTP request."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == ScopeType.HTTP:
            check_query_and_path(scope)
            if "route_handler" in scope:
                check_query_types(scope)
        await self.app(scope, receive, send)


# Strict types. Litestar converts query parameters and request bodies with ``msgspec.convert(strict=False)``
# (query values arrive as strings, so it must), and lax conversion also turns "1e3" into an int 1000,
# "0.5" or 0 into a datetime (a Unix timestamp) and "1700000000" into one. Nothing in this API documents
# numbers as strings or timestamps, so two checks close that for every endpoint at once, driven by the
# handler's own signature: JSON bodies are converted once more with ``strict=True`` (SafeRequest.json),
# and each typed query value must be spelled as its type says (check_query_types), which also makes naive
# and out-of-range query datetimes a 422 everywhere.

_RAW_SPELLING: dict[type, tuple[re.Pattern[str], str]] = {
    int: (re.compile(anchored(r"-?[0-9]+")), "must be an integer in decimal digits"),
    float: (re.compile(anchored(r"-?[0-9]+(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?")), "must be a decimal number"),
    dt.datetime: (
        re.compile(anchored(r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}(?::[0-9]{2}(?:\.[0-9]{1,9})?)?")),
        "must be an RFC 3339 date-time",
    ),
}
_OFFSET = re.compile(r"(?:[Zz]|[-+][0-9]{2}:[0-9]{2})\Z")
_query_kinds: weakref.WeakKeyDictionary[BaseRouteHandler, dict[str, type]] = weakref.WeakKeyDictionary()
_body_types: weakref.WeakKeyDictionary[BaseRouteHandler, Any] = weakref.WeakKeyDictionary()
_MSGSPEC_PATH = re.compile(r" - at `\$\.?([^`]*)`")


def _scalar_kind(annotation: Any) -> type | None:
    """``int``, ``float`` or ``datetime`` when a parameter's type (optional or a list of it) is one."""
    for candidate in (annotation, *getattr(annotation, "__args__", ())):
        origin = getattr(candidate, "__origin__", None)
        if origin is Annotated or getattr(candidate, "__metadata__", None) is not None:
            candidate = candidate.__origin__
        if candidate is bool:
            return None
        if candidate in _RAW_SPELLING:
            kind: type = candidate
            return kind
    return None


def _query_kinds_of(handler: BaseRouteHandler, path_params: Mapping[str, Any] | None) -> dict[str, type]:
    def compute(handler: BaseRouteHandler) -> dict[str, type]:
        kinds: dict[str, type] = {}
        # Litestar annotates the values as PathParameterDefinition but reads only the keys (the names).
        names = dict.fromkeys(path_params or ())
        model = handler.create_kwargs_model(path_parameters=names)  # type: ignore[arg-type]  # only .keys() is read
        fields = handler.parsed_fn_signature.parameters
        for param in model.expected_query_params:
            field = fields.get(param.field_name)
            kind = _scalar_kind(field.annotation) if field is not None else None
            if kind is not None:
                kinds[param.field_alias] = kind
        return kinds

    return cached_per_handler(_query_kinds, handler, compute)


def check_query_types(scope: Scope) -> None:
    """Refuse query values not spelled as their parameter's type: ``limit=1e3``, ``since=0.5``, naive or
    out-of-range datetimes (see the note above).

    Args:
        scope: The ASGI scope of a matched route (``route_handler`` set).

    Raises:
        InputError: Naming the parameter.
    """
    query = scope.get("query_string", b"")
    if not query:
        return
    kinds = _query_kinds_of(scope["route_handler"], scope.get("path_params"))
    if not kinds:
        return
    for name, raw in parse_qsl(query.decode("latin-1"), keep_blank_values=True):
        kind = kinds.get(name)
        if kind is None or raw == "":
            continue
        spelling, message = _RAW_SPELLING[kind]
        if kind is dt.datetime:
            if not spelling.match(_OFFSET.sub("", raw)):
                raise InputError(message, field=name, source="query")
            if not _OFFSET.search(raw):
                raise InputError(
                    "a timezone offset is required (e.g. 2026-01-01T00:00:00Z)", field=name, source="query"
                )
            try:
                parsed = msgspec.convert(raw, dt.datetime)
            except msgspec.ValidationError as exc:
                raise InputError(message, field=name, source="query") from exc
            check_datetime_range(parsed, name, source="query")
        elif not spelling.match(raw):
            raise InputError(message, field=name, source="query")
