"""The shared input types, their constraints and the errors that refuse input (see the package docstring)."""

from __future__ import annotations

import datetime as dt
import re
import weakref
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

import msgspec
from litestar.handlers import BaseRouteHandler
from litestar.params import HeaderParameter, ParameterKwarg, PathParameter, QueryParameter

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


class MalformedBodyError(InputError):
    """The body cannot be decoded at all: not JSON, or not UTF-8 (answered 400, not 422)."""


class InvalidEncodingError(MalformedBodyError):
    """The body's bytes are not the encoding its content type says."""


_T = TypeVar("_T")


def cached_per_handler(
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
