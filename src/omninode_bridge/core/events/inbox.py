"""The inbox (``event_processed``): which consumer has applied which event, claimed in its transaction.

A consumer claims an event's id in the transaction that applies it; a redelivery finds the claim and
has no second effect. Claims take the ids as one array parameter, so a batch of any size is one
statement; :func:`claim_and_log` also logs the newly claimed events as consumed in that statement.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence

from sqlalchemy import text

from omninode_bridge.core.db import UnitOfWork
from omninode_bridge.core.events.eventlog import EventRef, consumed_rows_sql

__all__ = ["claim", "claim_and_log", "release"]

_CLAIM_SQL = (
    "INSERT INTO event_processed (consumer, event_id) SELECT CAST(:consumer AS varchar), unnest(CAST(:ids AS uuid[])) "
    "ON CONFLICT DO NOTHING RETURNING event_id"
)
_CLAIM = text(_CLAIM_SQL)
# Composed of this package's constant statements only, at import: nothing of a caller's goes into the text.
# Sent on the driver's connection (asyncpg's positional parameters, its prepared-statement cache): the
# arrays go to the server as they are, without SQLAlchemy's per-statement processing.
_CLAIM_AND_LOG = (
    f"WITH claimed AS ({_CLAIM_SQL}), logged AS ({consumed_rows_sql(only_claimed=True)}) SELECT event_id FROM claimed"  # noqa: S608
)
_CLAIM_AND_LOG_ORDER = ("consumer", "ids", "types", "correlations", "topic", "status", "duration_ms", "error")
for _position, _name in enumerate(_CLAIM_AND_LOG_ORDER, 1):
    _CLAIM_AND_LOG = _CLAIM_AND_LOG.replace(f":{_name} ", f"${_position} ").replace(f":{_name})", f"${_position})")
_RELEASE = text(
    "DELETE FROM event_processed AS p USING unnest(CAST(:consumers AS varchar[]), CAST(:ids AS uuid[])) AS r(c, e) "
    "WHERE p.consumer = r.c AND p.event_id = r.e"
)


async def claim(uow: UnitOfWork, consumer: str, event_ids: Sequence[uuid.UUID]) -> set[uuid.UUID]:
    """Record that ``consumer`` applies ``event_ids`` in ``uow``'s transaction; returns the ids newly claimed.

    An id missing from the result was claimed before (a redelivery or a duplicate): skip it.
    """
    if not event_ids:
        return set()
    result = await uow.session.execute(_CLAIM, {"consumer": consumer, "ids": list(event_ids)})
    return set(result.scalars())


async def claim_and_log(uow: UnitOfWork, consumer: str, topic: str, envelopes: Sequence[EventRef]) -> set[uuid.UUID]:
    """:func:`claim` the envelopes' ids and log the newly claimed ones as consumed (``processed``), in one statement.

    Args:
        uow: The consumer's unit of work.
        consumer: The catalog consumer.
        topic: Where the envelopes came from.
        envelopes: The batch (distinct event ids): envelopes, or anything with their ``event_id``,
            ``event_type`` and ``correlation_id``.

    Returns:
        The ids newly claimed; the others were applied before.
    """
    if not envelopes:
        return set()
    driver = await uow.driver_connection()
    rows = await driver.fetch(
        _CLAIM_AND_LOG,
        consumer,
        [e.event_id for e in envelopes],
        [e.event_type for e in envelopes],
        [e.correlation_id for e in envelopes],
        topic,
        "processed",
        None,
        None,
    )
    return {row[0] for row in rows}  # asyncpg's UUID is a uuid.UUID


async def release(uow: UnitOfWork, claims: Iterable[tuple[str, uuid.UUID]]) -> None:
    """Forget ``(consumer, event_id)`` claims, so that the events can be applied again (a re-drive)."""
    pairs = list(claims)
    if pairs:
        await uow.session.execute(_RELEASE, {"consumers": [c for c, _ in pairs], "ids": [e for _, e in pairs]})
