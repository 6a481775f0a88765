"""Keyset pages, newest first, over a table with an increasing ``id``: the shape every list endpoint uses.

A page asks for one row more than its size, which tells whether a next page exists without a count
query; the next cursor is the last row's id, and the next page takes the rows with a smaller id.

Every list endpoint declares its ``cursor`` query parameter with :data:`BigintCursorQuery` or
:data:`UuidCursorQuery` and decodes it with :func:`bigint_cursor` / :func:`uuid_cursor`: an empty
``cursor=`` is the first page, as if it were left out (as the OpenAPI document says), and a value that is
not a cursor we could have handed out (too large for ``bigint``, not a UUID) is a 422.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from typing import Annotated, Any, TypeVar

from litestar.params import QueryParameter
from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql import ColumnElement

from omninode_bridge.core.inputs import BIGINT_MAX, InputError, anchored

__all__ = [
    "BigintCursorQuery",
    "Filter",
    "UuidCursorQuery",
    "bigint_cursor",
    "newest_first",
    "uuid_cursor",
    "where_given",
]

_CURSOR_NOTE = "next_cursor of the previous page; empty or absent for the first page"
_UUID = "[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}"

#: A ``cursor`` query parameter over a ``bigint`` id (decode it with :func:`bigint_cursor`).
BigintCursorQuery = Annotated[
    str | None, QueryParameter(pattern=anchored("[0-9]{0,19}"), max_length=19, description=_CURSOR_NOTE)
]
#: A ``cursor`` query parameter over a UUID id (decode it with :func:`uuid_cursor`).
UuidCursorQuery = Annotated[
    str | None, QueryParameter(pattern=anchored(f"(?:{_UUID})?"), max_length=36, description=_CURSOR_NOTE)
]


def bigint_cursor(raw: str | None, field: str = "cursor") -> int | None:
    """The id a ``cursor`` query value stands for; None for the first page (absent or empty).

    Raises:
        InputError: Not decimal digits, or larger than a ``bigint`` (a 422, never an overflow in the query).
    """
    if not raw:
        return None
    if not raw.isascii() or not raw.isdigit() or int(raw) > BIGINT_MAX:
        raise InputError("must be the next_cursor of a previous page", field=field, source="query")
    return int(raw)


def uuid_cursor(raw: str | None, field: str = "cursor") -> uuid.UUID | None:
    """Like :func:`bigint_cursor` for tables keyed by (time-ordered) UUIDs."""
    if not raw:
        return None
    try:
        return uuid.UUID(raw)
    except ValueError as exc:
        raise InputError("must be the next_cursor of a previous page", field=field, source="query") from exc


T = TypeVar("T")

#: A query parameter and the clause it stands for; the clause is only built when the value is given.
Filter = tuple[Any, Callable[[], ColumnElement[bool]]]


def where_given(query: Select[Any], filters: Iterable[Filter]) -> Select[Any]:
    """``query`` narrowed by the clause of every filter whose value is not None."""
    for value, clause in filters:
        if value is not None:
            query = query.where(clause())
    return query


async def newest_first(
    session: AsyncSession, entity: type[T], *, limit: int, cursor: Any | None, filters: Iterable[Filter] = ()
) -> tuple[list[T], str | None]:
    """One page of ``entity`` rows by descending ``id``, after ``cursor``, matching every filter given.

    Args:
        session: The unit of work's session.
        entity: A mapped class with an ``id`` column that grows with insertion.
        limit: Page size.
        cursor: The id of the previous page's last row, or None for the first page.
        filters: ``(value, clause)`` pairs, see :func:`where_given`.

    Returns:
        The rows and the next page's cursor (None on the last page).
    """
    id_column = entity.id  # type: ignore[attr-defined]  # every paged entity maps an id column (Args)
    query = where_given(select(entity), [(cursor, lambda: id_column < cursor), *filters])
    rows = list((await session.scalars(query.order_by(id_column.desc()).limit(limit + 1))).all())
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, (str(rows[-1].id) if more and rows else None)
