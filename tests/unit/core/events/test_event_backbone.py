"""The event backbone's pure parts: the envelope on the wire, the outbox's row values and statement shapes."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from collections.abc import Callable

import msgspec
import pytest
from sqlalchemy import column, select, table
from sqlalchemy.dialects import postgresql

from omninode_bridge.core.events import (
    CatalogError,
    EventPublisher,
    OnexEnvelopeV1,
    decode_envelope,
    encode_envelope,
    kafka_headers,
    load_catalog,
    new_envelope,
    staged_after,
)
from omninode_bridge.core.events.eventlog import consumed_params, consumed_rows_sql

TOPIC = "omninode_bridge_hook_events_v1"


class _FakeDatabase:
    """The one thing the publisher asks of a database: its named signals."""

    def __init__(self) -> None:
        self.signals: dict[str, asyncio.Event] = {}

    def signal(self, name: str) -> asyncio.Event:
        return self.signals.setdefault(name, asyncio.Event())


class _FakeUnitOfWork:
    """Collects after-commit callbacks, as the real unit of work does."""

    def __init__(self) -> None:
        self.callbacks: list[Callable[[], None]] = []

    def after_commit(self, callback: Callable[[], None]) -> None:
        self.callbacks.append(callback)


def _fixed_envelope() -> OnexEnvelopeV1:
    return new_envelope(
        event_type="HookEventReceived",
        payload={"b": 1, "a": "é"},
        correlation_id="corr-1",
        session_id="s-1",
        source="omninode-bridge.hooks",
        event_id=uuid.UUID("01234567-89ab-cdef-0123-456789abcdef"),
        timestamp=dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC),
    )


def test_envelope_bytes_on_the_wire_are_stable() -> None:
    envelope = _fixed_envelope()
    data = encode_envelope(envelope)
    assert data == (
        b'{"envelope_version":"1.0","event_id":"01234567-89ab-cdef-0123-456789abcdef","correlation_id":"corr-1",'
        b'"session_id":"s-1","event_type":"HookEventReceived","source":"omninode-bridge.hooks",'
        b'"timestamp":"2026-01-02T03:04:05Z","payload":{"b":1,"a":"\xc3\xa9"},'
        b'"payload_hash":"' + envelope.payload_hash.encode() + b'"}'
    )
    assert decode_envelope(data) == envelope


def test_staged_params_are_the_outbox_row_and_wake_the_relay_on_commit() -> None:
    database = _FakeDatabase()
    publisher = EventPublisher(load_catalog(), database)  # fakes of our own ports: nothing here needs a server
    uow = _FakeUnitOfWork()
    envelope = new_envelope(event_type="HookEventReceived", payload={"x": 1}, correlation_id="c-9")
    params = publisher.staged_params(uow, TOPIC, envelope)
    assert params["outbox_event_id"] == envelope.event_id
    assert params["outbox_topic"] == TOPIC
    assert params["outbox_key"] == "c-9"
    assert params["outbox_event_type"] == "HookEventReceived"
    assert decode_envelope(params["outbox_envelope"]) == envelope
    assert msgspec.json.decode(params["outbox_headers"]) == {k: v.decode() for k, v in kafka_headers(envelope)}
    assert not database.signal("outbox").is_set()
    for callback in uow.callbacks:
        callback()
    assert database.signal("outbox").is_set()


def test_an_unknown_topic_is_refused_before_anything_is_staged() -> None:
    publisher = EventPublisher(load_catalog(), _FakeDatabase())
    uow = _FakeUnitOfWork()
    with pytest.raises(CatalogError, match="no_such_topic_v1"):
        publisher.staged_params(uow, "no_such_topic_v1", new_envelope(event_type="X", payload={}))
    assert uow.callbacks == []


def test_staged_after_chains_the_outbox_insert_after_the_gate_in_one_statement() -> None:
    gate = table("written", column("event_id"))
    staged = staged_after(select(gate.c.event_id).cte("written"))
    sql = str(select(staged.c.event_id).compile(dialect=postgresql.dialect()))
    assert sql.startswith("WITH written AS")
    assert "staged AS \n(INSERT INTO event_outbox (event_id, topic, key, event_type, envelope, headers)" in sql
    assert "FROM written RETURNING event_outbox.event_id" in sql
    for name in ("outbox_event_id", "outbox_topic", "outbox_key", "outbox_event_type", "outbox_envelope"):
        assert f"%({name})s" in sql


def test_consumed_rows_are_parallel_arrays_in_order() -> None:
    envelopes = [new_envelope(event_type=f"T{i}", payload={}, correlation_id=f"c{i}") for i in range(3)]
    params = consumed_params("reducer", "topic_v1", envelopes, status="dead_lettered", error="boom")
    assert params["ids"] == [e.event_id for e in envelopes]
    assert params["types"] == ["T0", "T1", "T2"]
    assert params["correlations"] == ["c0", "c1", "c2"]
    assert (params["topic"], params["consumer"], params["status"], params["error"]) == (
        "topic_v1",
        "reducer",
        "dead_lettered",
        "boom",
    )
    assert params["duration_ms"] is None
    assert "WHERE" not in consumed_rows_sql()
    assert "FROM claimed" in consumed_rows_sql(only_claimed=True)
