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
from typing import Annotated, Any
from urllib.parse import parse_qsl

import msgspec
from litestar import Request
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
    "has_control_characters",
    "limit",
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
                self._json = self._connection_state.json = check_json_body(await self.body())
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
        if scope["type"] == "http":
            check_query_and_path(scope)
        await self.app(scope, receive, send)
