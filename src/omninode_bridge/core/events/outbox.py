"""The transactional outbox: envelopes staged inside a unit of work; the relay (``relay.py``) ships the rows.

:class:`EventPublisher` writes ``event_outbox`` in the caller's transaction, so rolled-back work publishes
nothing and committed work is never lost, whatever Kafka is doing; after the commit it wakes the relay
through the database's ``outbox`` signal. It is the only writer of the outbox, in three shapes:

* :meth:`~EventPublisher.publish` (one envelope) and :meth:`~EventPublisher.publish_many` (a few, one
  ``INSERT``);
* :meth:`~EventPublisher.stage_many`: a large batch by ``COPY`` on the transaction's connection;
* :func:`staged_after` with :meth:`~EventPublisher.staged_params`: the outbox row as a CTE that a module
  chains after its own insert, so its row and the event are written by one statement.

:meth:`~EventPublisher.stage_encoded` and :meth:`~EventPublisher.staged_encoded_params` take
:class:`EnvelopeHead` envelopes instead, whose ``payload`` is already the payload's canonical JSON
(``payload_hash`` its BLAKE3): a module that builds thousands of events encodes each payload once, without a
dict, and the envelope is written as it is. :meth:`~EventPublisher.publish_many`,
:meth:`~EventPublisher.stage_many` and the arrays take either kind (``envelope.encoded_envelopes`` builds them).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import msgspec
from sqlalchemy import CTE, FromClause, String, Text, bindparam, cast, insert, select, text
from sqlalchemy.dialects.postgresql import JSONB

from omninode_bridge.core.db import Database, UnitOfWork
from omninode_bridge.core.events.catalog import TopicCatalog
from omninode_bridge.core.events.envelope import EnvelopeHead, OnexEnvelopeV1, encode_envelope
from omninode_bridge.core.events.models import OUTBOX_TABLE, OutboxEntry

__all__ = ["OUTBOX_SIGNAL", "EventPublisher", "outbox_rows_sql", "staged_after"]

#: Name of the database signal that wakes the relay after a commit that staged events.
OUTBOX_SIGNAL = "outbox"

_COLUMNS = ("event_id", "topic", "key", "event_type", "envelope", "headers")
_json = msgspec.json.Encoder()
#: What the outbox stages: a whole envelope, or one whose payload is encoded already (see the module docstring).
_Envelope = OnexEnvelopeV1 | EnvelopeHead


def outbox_rows_sql(gate: str = "true") -> str:
    """SQL of the outbox rows of many envelopes as one ``INSERT ... SELECT FROM unnest(arrays)``.

    The text is the same whatever the number of events, so it is compiled once and prepared once per
    connection (a multi-row ``VALUES`` is new SQL for each count). A module may use it as a CTE of its own
    statement (``outbox AS (<this>)``), binding :meth:`EventPublisher.staged_arrays`.

    Args:
        gate: An SQL condition; the rows are written only where it holds (e.g. ``EXISTS (SELECT 1 FROM lead)``).
            It may name the row's columns as ``staged.event_id``, ``staged.key``, ``staged.event_type``,
            ``staged.envelope`` and ``staged.headers`` (the topic is one for all).
    """
    return _OUTBOX_ROWS + gate  # the gate is the calling code's SQL, never input


# One topic per call, bound once: an array of it cost asyncpg ~1.6 us per event to encode, and PostgreSQL ~2 us
# to unnest (bench of 864-row inserts: 12.8 -> 11.1 us per row client side, 13.3 -> 11.3 server side).
_OUTBOX_ROWS = (
    "INSERT INTO event_outbox (event_id, topic, key, event_type, envelope, headers) "
    "SELECT staged.event_id, CAST(:outbox_topic AS text), staged.key, staged.event_type, staged.envelope, "
    "staged.headers FROM unnest(CAST(:outbox_event_ids AS uuid[]), CAST(:outbox_keys AS text[]), "
    "CAST(:outbox_event_types AS text[]), CAST(:outbox_envelopes AS bytea[]), CAST(:outbox_headers AS jsonb[])) "
    "AS staged(event_id, key, event_type, envelope, headers) WHERE "
)
_PUBLISH_MANY = text(outbox_rows_sql())


def staged_after(gate: FromClause, name: str = "staged") -> CTE:
    """The outbox row of one envelope as a data-modifying CTE, written once per row of ``gate``.

    A module chains it after its own insert to write its row and the event in one statement: ``gate`` is
    the module's CTE (``INSERT ... RETURNING``), so the event is staged exactly when the module's row was
    written (none when a conflict skipped it). Build the statement once, at import; bind the values of
    :meth:`EventPublisher.staged_params` when executing it.

    Args:
        gate: The rows that decide whether the event is staged (usually zero or one).
        name: The CTE's name.

    Returns:
        ``INSERT INTO event_outbox ... RETURNING event_id`` as a CTE.
    """
    table = OUTBOX_TABLE
    values = select(
        bindparam("outbox_event_id", type_=table.c.event_id.type),
        bindparam("outbox_topic", type_=String()),
        bindparam("outbox_key", type_=String()),
        bindparam("outbox_event_type", type_=String()),
        bindparam("outbox_envelope", type_=table.c.envelope.type),
        # Encoded here (msgspec), not by the JSONB type: the same text COPY and the relay read.
        cast(bindparam("outbox_headers", type_=Text()), JSONB),
    ).select_from(gate)
    return insert(table).from_select(list(_COLUMNS), values).returning(table.c.event_id).cte(name)


def _headers_json(envelope: _Envelope) -> str:
    """The ``headers`` column of an envelope's outbox row, as JSON text: ``kafka_headers`` as an object."""
    # Built directly (msgspec writes a UUID as its string): kafka_headers' bytes decoded back cost more per event.
    e = envelope
    head = {"event_type": e.event_type, "event_id": e.event_id, "envelope_version": e.envelope_version}
    return _json.encode(head).decode()


class EventPublisher:
    """Writes envelopes to the outbox; the only way modules publish.

    Args:
        catalog: Topics are checked against it, so an unknown topic fails here, never at the broker.
        database: Its outbox signal wakes the relay after each commit.
    """

    def __init__(self, catalog: TopicCatalog, database: Database) -> None:
        self.catalog = catalog
        self.database = database

    async def publish(self, uow: UnitOfWork, topic: str, envelope: OnexEnvelopeV1) -> None:
        """Stage one envelope for ``topic`` in ``uow``'s transaction."""
        await self.publish_many(uow, topic, [envelope])

    async def publish_many(self, uow: UnitOfWork, topic: str, envelopes: Sequence[_Envelope]) -> None:
        """Stage a few envelopes in one ``INSERT`` (for thousands, :meth:`stage_many` is faster)."""
        if not envelopes:
            return
        # One statement from arrays, the same text for any count: no per-count compile or prepare.
        await uow.session.execute(_PUBLISH_MANY, self.staged_arrays(uow, topic, envelopes))

    def staged_arrays(self, uow: UnitOfWork, topic: str, envelopes: Sequence[_Envelope]) -> dict[str, Any]:
        """The parameters of :func:`outbox_rows_sql` for ``envelopes`` (each encoded once); the relay is woken
        when ``uow`` commits.

        Raises:
            CatalogError: ``topic`` is not in the catalog.
        """
        params = self.polled_arrays(topic, envelopes)
        uow.after_commit(self.database.signal(OUTBOX_SIGNAL).set)
        return params

    def polled_arrays(self, topic: str, envelopes: Sequence[_Envelope]) -> dict[str, Any]:
        """As :meth:`staged_arrays`, but the relay is not woken: the rows wait for its next poll
        (``outbox.poll_interval_ms``). For events that may trail by that long, so that a steady stream of
        single-event commits is relayed in batches instead of a relay round per commit.

        Raises:
            CatalogError: ``topic`` is not in the catalog.
        """
        self.catalog.require(topic)
        return {
            "outbox_event_ids": [e.event_id for e in envelopes],
            "outbox_topic": topic,
            "outbox_keys": [e.correlation_id for e in envelopes],
            "outbox_event_types": [e.event_type for e in envelopes],
            "outbox_envelopes": [encode_envelope(e) for e in envelopes],
            "outbox_headers": [_headers_json(e) for e in envelopes],
        }

    async def stage_many(self, uow: UnitOfWork, topic: str, envelopes: Sequence[_Envelope]) -> None:
        """Stage a batch of envelopes by ``COPY`` on ``uow``'s connection (its transaction).

        For batches of hundreds or thousands: per-row parameter binding through SQLAlchemy costs more than
        everything else a batch endpoint does.

        Raises:
            CatalogError: ``topic`` is not in the catalog.
        """
        await self._copy(uow, topic, envelopes)

    async def stage_encoded(self, uow: UnitOfWork, topic: str, envelopes: Sequence[EnvelopeHead]) -> None:
        """:meth:`stage_many` for envelopes whose payload is encoded already (canonical JSON, hashed).

        Raises:
            CatalogError: ``topic`` is not in the catalog.
        """
        await self._copy(uow, topic, envelopes)

    async def _copy(self, uow: UnitOfWork, topic: str, envelopes: Sequence[_Envelope]) -> None:
        if not envelopes:
            return
        self.catalog.require(topic)
        uow.after_commit(self.database.signal(OUTBOX_SIGNAL).set)
        # The COPY records straight from the envelopes (no row dicts): jsonb travels as its JSON text.
        records = [
            (e.event_id, topic, e.correlation_id, e.event_type, encode_envelope(e), _headers_json(e)) for e in envelopes
        ]
        driver = await uow.driver_connection()
        await driver.copy_records_to_table(OUTBOX_TABLE.name, columns=list(_COLUMNS), records=records)

    def staged_params(self, uow: UnitOfWork, topic: str, envelope: OnexEnvelopeV1) -> dict[str, Any]:
        """The parameters of a :func:`staged_after` CTE for ``envelope``; the relay is woken when ``uow`` commits.

        Raises:
            CatalogError: ``topic`` is not in the catalog.
        """
        return self._params(uow, topic, envelope)

    def staged_encoded_params(self, uow: UnitOfWork, topic: str, envelope: EnvelopeHead) -> dict[str, Any]:
        """:meth:`staged_params` for an envelope whose payload is encoded already (canonical JSON, hashed).

        Raises:
            CatalogError: ``topic`` is not in the catalog.
        """
        return self._params(uow, topic, envelope)

    def _params(self, uow: UnitOfWork, topic: str, envelope: _Envelope) -> dict[str, Any]:
        self.catalog.require(topic)
        uow.after_commit(self.database.signal(OUTBOX_SIGNAL).set)
        return {
            "outbox_event_id": envelope.event_id,
            "outbox_topic": topic,
            "outbox_key": envelope.correlation_id,
            "outbox_event_type": envelope.event_type,
            "outbox_envelope": encode_envelope(envelope),
            "outbox_headers": _headers_json(envelope),
        }

    async def publish_raw(
        self,
        uow: UnitOfWork,
        topic: str,
        *,
        key: str | None,
        value: bytes,
        headers: dict[str, str],
        event_type: str,
    ) -> None:
        """Stage a record that is not one of our envelopes (dead letters keep their original bytes)."""
        self.catalog.require(topic)
        await uow.session.execute(
            insert(OutboxEntry),
            [{"event_id": uuid.uuid4(), "topic": topic, "key": key or "", "event_type": event_type,
              "envelope": value, "headers": headers}],
        )  # fmt: skip
        uow.after_commit(self.database.signal(OUTBOX_SIGNAL).set)
