"""Safe text for exceptions: what may reach a log line, a response or a stored row.

A library's exception text can carry the data it was working on: PostgreSQL puts values in its messages
(``Key (name)=(...) already exists``, ``Failing row contains (...)``, a trigger's ``RAISE``), SQLAlchemy adds
the statement, and wrappers such as advanced-alchemy's repository errors repeat all of it. So:

- :func:`describe_error` is for responses and stored rows (workflow and step ``error``, DLQ headers, the
  event log): a classification only, e.g. ``database error (23505 unique_violation, constraint
  api_keys_name_key, table api_keys)``, ``timed out``, ``httpx.ConnectError``. Messages of our own
  exceptions are kept: we write them and they never embed a library's text.
- :func:`loggable_error` is for log fields: database errors are classified as above, other messages kept.
- :func:`format_exception_safely` renders a traceback (frames, no locals) with each message reduced by
  the same rule; the logging configuration uses it for every ``exc_info``.
"""

from __future__ import annotations

import re
import traceback
from types import TracebackType
from typing import Any

import asyncpg
import msgspec
from sqlalchemy.exc import DBAPIError, StatementError

__all__ = ["database_error_of", "describe_error", "format_exception_safely", "loggable_error"]

_OWN_PACKAGE = "omninode_bridge"
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_QUOTED = re.compile(r"'[^']*'")
# asyncpg names its classes after PostgreSQL's condition names; where they differ, PostgreSQL's name.
_CONDITION_NAMES = {"RaiseError": "raise_exception", "QueryCanceledError": "query_canceled"}


def _is_own(exc: BaseException) -> bool:
    return type(exc).__module__.split(".", 1)[0] == _OWN_PACKAGE


def _causes(exc: BaseException) -> list[BaseException]:
    """``exc`` and its explicit causes (``raise ... from``), outermost first."""
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and all(current is not seen for seen in chain):
        chain.append(current)
        current = current.__cause__
    return chain


def database_error_of(exc: BaseException) -> BaseException | None:
    """The database error ``exc`` is or was raised from (SQLAlchemy or asyncpg), or None."""
    for item in _causes(exc):
        if isinstance(item, StatementError | asyncpg.PostgresError):
            return item
    return None


def _postgres_error(exc: BaseException) -> asyncpg.PostgresError | None:
    """The asyncpg error behind a SQLAlchemy one (``DBAPIError.orig`` wraps it as its cause)."""
    candidates = [exc]
    if isinstance(exc, DBAPIError) and exc.orig is not None:
        candidates += [exc.orig, exc.orig.__cause__ or exc.orig]
    return next((c for c in candidates if isinstance(c, asyncpg.PostgresError)), None)


def _classify_database_error(exc: BaseException) -> str:
    pg = _postgres_error(exc)
    if pg is None:
        if isinstance(exc, DBAPIError) and exc.orig is not None:
            sqlstate = getattr(exc.orig, "sqlstate", None)
            return f"database error ({sqlstate})" if sqlstate else f"database error ({type(exc.orig).__name__})"
        # A StatementError that is no DBAPIError failed before reaching PostgreSQL (e.g. binding a value).
        original = getattr(exc, "orig", None)
        return f"database error ({type(original or exc).__name__})"
    name = type(pg).__name__
    condition = _CONDITION_NAMES.get(name) or _CAMEL.sub("_", name.removesuffix("Error")).lower()
    parts = [f"{pg.sqlstate} {condition}" if pg.sqlstate else condition]
    # Identifiers come from the schema, never from the data: safe to show and what an operator needs.
    constraint, table, column = (getattr(pg, a, None) for a in ("constraint_name", "table_name", "column_name"))
    if constraint:
        parts.append(f"constraint {constraint}")
    if table:
        parts.append(f"table {table}")
    if column:
        parts.append(f"column {column}")
    return f"database error ({', '.join(parts)})"


def _describe_msgspec(exc: msgspec.MsgspecError) -> str:
    # msgspec names the path and the expected type; it quotes offending values ("Invalid enum value 'x'").
    message = _QUOTED.sub("'…'", str(exc).splitlines()[0] if str(exc) else "")
    kind = "invalid JSON" if type(exc) is msgspec.DecodeError else "invalid data"
    return f"{kind}: {message}"[:300] if message else kind


def describe_error(exc: BaseException) -> str:
    """A classification of ``exc`` that is safe in a response or a stored row.

    Args:
        exc: Any exception.

    Returns:
        Our own exceptions' messages as written; for library exceptions a classification that never
        carries their text: the SQLSTATE, condition and schema names of a database error, ``timed out``,
        the errno name of an OS error, the shape problem of a msgspec error, or the exception's type.
    """
    if _is_own(exc):
        return str(exc) or type(exc).__name__
    database_error = database_error_of(exc)
    if database_error is not None:
        return _classify_database_error(database_error)
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, msgspec.MsgspecError):
        return _describe_msgspec(exc)
    if isinstance(exc, OSError) and exc.strerror:
        return f"{type(exc).__name__}: {exc.strerror}"
    module = type(exc).__module__.split(".", 1)[0]
    return type(exc).__name__ if module == "builtins" else f"{module}.{type(exc).__name__}"


def loggable_error(exc: BaseException) -> str:
    """``exc``'s message for a log field, with a database error reduced to its classification."""
    if not _is_own(exc) and database_error_of(exc) is not None:
        return describe_error(exc)
    return str(exc) or type(exc).__name__


def _format_one(exc: BaseException, seen: set[int]) -> list[str]:
    seen.add(id(exc))
    lines: list[str] = []
    cause, context = exc.__cause__, exc.__context__
    if cause is not None and id(cause) not in seen:
        lines += _format_one(cause, seen)
        lines.append("\nThe above exception was the direct cause of the following exception:\n\n")
    elif context is not None and not exc.__suppress_context__ and id(context) not in seen:
        lines += _format_one(context, seen)
        lines.append("\nDuring handling of the above exception, another exception occurred:\n\n")
    if exc.__traceback__ is not None:
        lines.append("Traceback (most recent call last):\n")
        lines += traceback.format_list(traceback.extract_tb(exc.__traceback__))
    kind = type(exc)
    name = kind.__qualname__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__qualname__}"
    lines.append(f"{name}: {loggable_error(exc)}\n")
    for index, member in enumerate(getattr(exc, "exceptions", None) or ()):
        if isinstance(member, BaseException):  # an exception group: its members, each with its own chain
            lines.append(f"+---------------- {index + 1} ----------------\n")
            lines += ["    " + line for line in "".join(_format_one(member, seen)).splitlines(keepends=True)]
    return lines


def format_exception_safely(
    exc_info: tuple[type[BaseException], BaseException, TracebackType | None] | tuple[None, None, None] | Any,
) -> str:
    """A traceback like Python's (frames and source lines, never locals), with safe messages.

    Usable as structlog's ``ExceptionRenderer`` formatter.
    """
    exc = exc_info[1] if isinstance(exc_info, tuple) else exc_info
    if not isinstance(exc, BaseException):
        return ""
    return "".join(_format_one(exc, set())).rstrip("\n")
