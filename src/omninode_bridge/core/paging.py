"""Keyset pages, newest first, over a table with an increasing ``id``: the shape every list endpoint uses.

A page asks for one row more than its size, which tells whether a next page exists without a count
query; the next cursor is the last row's id, and the next page takes the rows with a smaller id.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql import ColumnElement

__all__ = ["Filter", "newest_first", "where_given"]

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
    id_column = entity.id  # type: ignore[attr-defined]
    query = where_given(select(entity), [(cursor, lambda: id_column < cursor), *filters])
    rows = list((await session.scalars(query.order_by(id_column.desc()).limit(limit + 1))).all())
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, (str(rows[-1].id) if more and rows else None)  # type: ignore[attr-defined]
