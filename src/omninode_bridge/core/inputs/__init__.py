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

from omninode_bridge.core.inputs._json import (
    SafeRequest,
    check_json_body,
    check_json_value,
    convert_strict,
    nests_deeper_than,
)
from omninode_bridge.core.inputs._query import InputGuardMiddleware, check_query_and_path, check_query_types
from omninode_bridge.core.inputs._types import (
    BIGINT_MAX,
    CONTROL_CHARACTERS,
    DATETIME_MAX,
    DATETIME_MIN,
    MAX_JSON_DEPTH,
    AwareDatetime,
    BigintCursor,
    Identifier,
    InputError,
    InvalidEncodingError,
    MalformedBodyError,
    MultilineText,
    Namespace,
    Text,
    anchored,
    check_datetime_range,
    has_control_characters,
    limit,
    param,
    text,
)

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
    "nests_deeper_than",
    "param",
    "text",
]
