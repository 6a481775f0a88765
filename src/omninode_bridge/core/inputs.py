"""Shared input types: every module declares its request fields and query/path parameters with these.

One definition of "safe input" for the whole service, so bad input is a 422 at the edge and never a
500 from the database, the encoder or the recursion limit:

- **Text** never holds NUL or other control characters (PostgreSQL refuses NUL in ``text`` and
  ``jsonb``; control characters in identifiers are never intended). :data:`MultilineText` allows tab,
  newline and carriage return, nothing else below 0x20.
- **Patterns are anchored** at the very end: msgspec and Python's ``re`` let ``$`` match before a final
  newline, so ``"^[a-z]+$"`` accepts ``"hooks\\n"``. Build patterns with :func:`anchored`.
- **Integers are bounded** (cursors fit PostgreSQL's ``bigint``; limits have a ceiling).
- **Datetimes are timezone-aware** (naive -> 422) and within :data:`DATETIME_MIN` .. :data:`DATETIME_MAX`,
  so converting to UTC never overflows.
- **JSON bodies** are checked once, in :class:`SafeRequest`: invalid UTF-8 is a 400, NUL in any string or
  key and nesting deeper than :data:`MAX_JSON_DEPTH` are 422 (see :func:`check_json_value`).
"""

from __future__ import annotations

import datetime as dt
import re
import weakref
from collections.abc import Callable, Mapping
from typing import Annotated, Any, TypeVar
from urllib.parse import parse_qsl

import msgspec
from litestar import Request
from litestar.enums import ScopeType
from litestar.exceptions import ValidationException
from litestar.handlers import BaseRouteHandler
from litestar.params import HeaderParameter, ParameterKwarg, PathParameter, QueryParameter
from litestar.types import ASGIApp, Empty, Receive, Scope, Send

__all__ = [
    "BIGINT_MAX",
    "CONTROL_CHARACTERS",
    "DATETIME_MAX",
    "DATETIME_MIN",
    "MAX_JSON_DEPTH",
    "AwareDatetime",
    "BigintCursor",
    "Identifier",
    "InputError",
    "InputGuardMiddleware",
    "InvalidEncodingError",
    "MalformedBodyError",
    "MultilineText",
    "Namespace",
    "SafeRequest",
    "Text",
    "anchored",
    "check_datetime_range",
    "check_json_body",
    "check_json_value",
    "check_query_and_path",
    "check_query_types",
    "convert_strict",
    "has_control_characters",
    "limit",
    "param",
    "text",
]

#: Every C0 control character and DEL.
CONTROL_CHARACTERS = "\x00-\x1f\x7f"
#: Largest value of a PostgreSQL ``bigint``; cursors and ids above it are refused, not overflowed.
BIGINT_MAX = 2**63 - 1
#: JSON nested deeper than this is refused (a 5,000-deep body otherwise exhausts the recursion limit).
MAX_JSON_DEPTH = 64
#: Datetimes outside this range are refused: PostgreSQL and Python cannot hold every offset of year 9999.
DATETIME_MIN = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
DATETIME_MAX = dt.datetime(9999, 12, 30, tzinfo=dt.UTC)

_CONTROL = re.compile(f"[{CONTROL_CHARACTERS}]")
_MULTILINE_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


class InputError(ValueError):
    """Input that is well-formed JSON or a well-formed URL but not acceptable; answered as a 422.

    Args:
        message: What is wrong, for a human.
        field: Dotted location of the offending value (``data.tool_input.command``), if known.
        source: ``body``, ``query``, ``path`` or ``header``.
    """

    def __init__(self, message: str, *, field: str | None = None, source: str = "body") -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.source = source


def anchored(pattern: str) -> str:
    """Anchor a regular expression at both ends of the whole string.

    Args:
        pattern: The body of the pattern, without ``^``/``$``.

    Returns:
        ``^(?:pattern)(?![\\s\\S])``: unlike ``^...$`` it does not accept a trailing newline, and unlike
        ``\\A...\\Z`` it is also an ECMA-262 regular expression, the dialect of JSON Schema, so the OpenAPI
        document (and its tools: schemathesis, generated clients) reads it the way msgspec applies it.
    """
    return rf"^(?:{pattern})(?![\s\S])"


def text(
    *,
    max_length: int,
    min_length: int = 0,
    pattern: str | None = None,
    description: str | None = None,
    multiline: bool = False,
) -> msgspec.Meta:
    """Constraints for a text field: bounded length and no control characters.

    Args:
        max_length: Longest accepted value.
        min_length: Shortest accepted value.
        pattern: An extra pattern body (anchored for you); it replaces the no-control-character pattern,
            so it must not admit control characters itself.
        description: Shown in the OpenAPI document.
        multiline: Allow tab, newline and carriage return.

    Returns:
        The ``msgspec.Meta`` to put in ``Annotated[str, ...]``.
    """
    if pattern is None:
        pattern = r"[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f]*" if multiline else r"[^\x00-\x1f\x7f]*"
    return msgspec.Meta(
        min_length=min_length, max_length=max_length, pattern=anchored(pattern), description=description
    )


def limit(maximum: int, *, description: str | None = None) -> msgspec.Meta:
    """Constraints for a page size: 1 .. ``maximum``."""
    return msgspec.Meta(ge=1, le=maximum, description=description)


#: One line of text without control characters, up to 4,096 characters.
Text = Annotated[str, text(max_length=4096)]
#: Text that may span lines (tab, newline, carriage return allowed), up to 64 KiB.
MultilineText = Annotated[str, text(max_length=65536, multiline=True)]
#: An opaque identifier chosen by a client (session id, tool call id, ...): 1-255 characters, no controls.
Identifier = Annotated[str, text(min_length=1, max_length=255)]
#: A namespace: letters, digits, ``_``, ``.``, ``-``; 1-255 characters.
Namespace = Annotated[
    str,
    msgspec.Meta(
        pattern=anchored(r"[a-zA-Z0-9_.-]{1,255}"),
        min_length=1,
        max_length=255,
        description="Letters, digits, '_', '.', '-'.",
        examples=["my_app"],
    ),
]
#: A keyset cursor over a ``bigint`` id.
BigintCursor = Annotated[int, msgspec.Meta(ge=0, le=BIGINT_MAX, description="next_cursor of the previous page")]
#: A timezone-aware datetime (RFC 3339 with an offset or ``Z``); naive values are refused.
AwareDatetime = Annotated[
    dt.datetime, msgspec.Meta(tz=True, description="RFC 3339 date-time with a timezone offset or Z.")
]


def param(
    shared: Any = None, *, path: bool = False, header: bool = False, description: str | None = None, **kwargs: Any
) -> ParameterKwarg:
    """A Litestar query (or path, or header) parameter with the constraints of a shared type.

    Litestar reads constraints of query and path parameters only from its parameter markers: a
    ``msgspec.Meta`` inside ``Annotated`` is neither enforced nor documented there. So
    ``Annotated[str | None, param(Namespace)]`` is how a parameter uses :data:`Namespace`.

    Args:
        shared: One of the shared ``Annotated`` types (e.g. :data:`Namespace`, :data:`Text`), or a
            ``msgspec.Meta`` such as ``text(max_length=100)``; None for no constraint of its own.
        path: A path parameter rather than a query parameter.
        header: A header parameter (give its ``name=``).
        description: Overrides the type's description.
        **kwargs: Further marker arguments (``name=`` alias, ``ge``/``le``...).

    Returns:
        A ``QueryParameter``, ``PathParameter`` or ``HeaderParameter`` to put in ``Annotated[...]``.
    """
    metas = [shared] if isinstance(shared, msgspec.Meta) else getattr(shared, "__metadata__", ())
    constraints: dict[str, Any] = {}
    for meta in metas:
        if isinstance(meta, msgspec.Meta):
            for name in ("pattern", "min_length", "max_length", "ge", "le", "description"):
                if getattr(meta, name) is not None:
                    constraints[name] = getattr(meta, name)
    if description is not None:
        constraints["description"] = description
    marker: type[ParameterKwarg] = HeaderParameter if header else PathParameter if path else QueryParameter
    return marker(**{**constraints, **kwargs})


def has_control_characters(value: str, *, multiline: bool = False) -> bool:
    """True when ``value`` holds a control character (tab/newline/CR allowed when ``multiline``)."""
    return (_MULTILINE_CONTROL if multiline else _CONTROL).search(value) is not None


def check_datetime_range(value: dt.datetime | None, field: str, *, source: str = "body") -> dt.datetime | None:
    """Refuse naive datetimes and those outside :data:`DATETIME_MIN` .. :data:`DATETIME_MAX`.

    Args:
        value: The parsed datetime (``None`` passes).
        field: Its name, for the problem's ``errors``.
        source: Where it came from.

    Returns:
        ``value`` unchanged.

    Raises:
        InputError: Naive or out of range.
    """
    if value is None:
        return None
    if value.tzinfo is None or value.utcoffset() is None:
        raise InputError("a timezone offset is required (e.g. 2026-01-01T00:00:00Z)", field=field, source=source)
    try:
        in_range = DATETIME_MIN <= value <= DATETIME_MAX
    except OverflowError:  # an offset that pushes the UTC value past year 9999
        in_range = False
    if not in_range:
        raise InputError(
            f"must be between {DATETIME_MIN.isoformat()} and {DATETIME_MAX.isoformat()}", field=field, source=source
        )
    return value


def check_json_value(value: Any, *, max_depth: int = MAX_JSON_DEPTH) -> None:
    """Walk decoded JSON once, iteratively: no NUL in any string or key, nesting at most ``max_depth``.

    Args:
        value: The decoded JSON document.
        max_depth: Deepest accepted nesting of objects and arrays.

    Raises:
        InputError: With the dotted path of the first offending value.
    """
    stack: list[tuple[Any, int, str]] = [(value, 1, "")]
    while stack:
        node, depth, path = stack.pop()
        if isinstance(node, dict):
            if depth > max_depth:
                raise InputError(f"JSON is nested deeper than {max_depth} levels", field=path or None)
            for key, item in node.items():
                child = f"{path}.{key}" if path else str(key)
                if "\x00" in key:
                    raise InputError("a key holds a NUL character", field=child.replace("\x00", "\\u0000"))
                stack.append((item, depth + 1, child))
        elif isinstance(node, list):
            if depth > max_depth:
                raise InputError(f"JSON is nested deeper than {max_depth} levels", field=path or None)
            stack.extend((item, depth + 1, f"{path}[{index}]") for index, item in enumerate(node))
        elif isinstance(node, str) and "\x00" in node:
            raise InputError("a string holds a NUL character", field=path or None)


def check_json_body(body: bytes) -> Any:
    """Decode a JSON request body and apply :func:`check_json_value`, walking it only when it could fail.

    Args:
        body: The raw body (empty means JSON ``null``).

    Returns:
        The decoded document.

    Raises:
        MalformedBodyError: Not JSON, or not UTF-8 (a 400).
        InputError: NUL in a string or key, or nested too deep (a 422).
    """
    try:
        value = msgspec.json.decode(body or b"null")
    except UnicodeDecodeError as exc:
        raise InvalidEncodingError("the body is not valid UTF-8") from exc
    except RecursionError as exc:
        raise InputError(f"JSON is nested deeper than {MAX_JSON_DEPTH} levels") from exc
    except msgspec.DecodeError as exc:
        # msgspec's message names the byte offset, nothing of the body; keep only that position.
        position = re.search(r"\(byte \d+\)", str(exc))
        raise MalformedBodyError("the body is not valid JSON" + (f" {position.group(0)}" if position else "")) from exc
    # Both checks scan bytes in C first; the Python walk runs only for bodies that might fail it.
    if b"\\u0000" in body or body.count(b"{") + body.count(b"[") > MAX_JSON_DEPTH:
        check_json_value(value)
    return value


class MalformedBodyError(InputError):
    """The body cannot be decoded at all: not JSON, or not UTF-8 (answered 400, not 422)."""


class InvalidEncodingError(MalformedBodyError):
    """The body's bytes are not the encoding its content type says."""


class SafeRequest(Request[Any, Any, Any]):
    """The app's request class: every JSON body goes through :func:`check_json_body`."""

    async def json(self) -> Any:
        """The decoded JSON body, checked once and cached like Litestar's own."""
        if self._json is Empty:
            if (cached := self._connection_state.json) is not Empty:
                self._json = cached
            else:
                body = await self.body()
                value = check_json_body(body)
                body_type = _body_type(self.route_handler) if "route_handler" in self.scope else None
                if body_type is not None:
                    if not body and not _accepts_null(body_type):
                        raise MalformedBodyError(
                            "the body is empty: send a JSON document (Content-Type: application/json)"
                        )
                    convert_strict(value, body_type)  # refuse what Litestar's lax conversion would coerce
                self._json = self._connection_state.json = value
        return self._json


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


_T = TypeVar("_T")


def _cached(
    cache: weakref.WeakKeyDictionary[BaseRouteHandler, _T],
    handler: BaseRouteHandler,
    compute: Callable[[BaseRouteHandler], _T],
) -> _T:
    """``compute(handler)``, remembered per handler. Litestar's generated handlers (OPTIONS, HEAD) have
    ``__slots__`` without ``__weakref__``: those are computed each time (they take no query or body)."""
    try:
        return cache[handler]
    except KeyError:
        value = cache[handler] = compute(handler)
        return value
    except TypeError:
        return compute(handler)


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

    return _cached(_query_kinds, handler, compute)


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


def _body_type(handler: BaseRouteHandler) -> Any:
    """The type a handler's ``data`` parameter is converted to (None when it takes no typed JSON body)."""

    def compute(handler: BaseRouteHandler) -> Any:
        field = handler.parsed_fn_signature.parameters.get("data")
        return None if field is None or field.annotation is Any else field.annotation

    return _cached(_body_types, handler, compute)


def _accepts_null(body_type: Any) -> bool:
    try:
        msgspec.convert(None, body_type)
    except msgspec.ValidationError:
        return False
    return True


def convert_strict(value: Any, target: type[_T]) -> _T:
    """Convert decoded JSON to ``target`` with msgspec's strict rules (no numbers as strings or times).

    Args:
        value: The decoded JSON document.
        target: A msgspec-compatible type (usually a Struct).

    Returns:
        The converted value.

    Raises:
        ValidationException: Naming the field, as Litestar reports its own validation errors (a 422).
    """
    try:
        return msgspec.convert(value, target, strict=True)
    except msgspec.ValidationError as exc:
        text_ = str(exc)
        match = _MSGSPEC_PATH.search(text_)
        message = _MSGSPEC_PATH.sub("", text_)
        field = match.group(1) if match and match.group(1) else None
        raise ValidationException(
            detail=f"Invalid request body: {message}", extra=[{"key": field, "source": "body", "message": message}]
        ) from exc
