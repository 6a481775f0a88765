"""The sealed event backbone's API against the real embedded PostgreSQL: outbox, inbox, event log, dead letters."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, text

from omninode_bridge.core.db import Database
from omninode_bridge.core.events import (
    CatalogError,
    EventPublisher,
    claim,
    claim_and_log,
    event_log_page,
    latest_dead_letters,
    load_catalog,
    lock_dead_letter,
    log_consumed,
    new_envelope,
    redrive,
    release,
    staged_after,
    stored_dead_letter_counts,
)
from omninode_bridge.settings import Settings
from tests.integration.conftest import sql_rows
from tests.support.contracts_helper import contracts_copy

TOPIC = "omninode_bridge_workflow_events_v1"


def _envelopes(n: int, correlation_id: str | None = None) -> list[Any]:
    return [new_envelope(event_type="BackboneTest", payload={"i": i}, correlation_id=correlation_id) for i in range(n)]


async def _outbox(url: str, ids: list[uuid.UUID]) -> list[Any]:
    return await sql_rows(
        url,
        "SELECT o.event_id, o.topic, o.key, o.event_type, o.envelope, o.headers, p.id IS NOT NULL AS pending "
        "FROM event_outbox AS o LEFT JOIN event_outbox_pending AS p USING (id) WHERE o.event_id = ANY(:ids) "
        "ORDER BY o.id",
        ids=ids,
    )


async def test_the_three_outbox_forms_write_the_same_rows_and_leave_them_pending(
    settings: Settings, database: Database, tmp_path: Path
) -> None:
    # A topic of this test's own: the session's app relays every topic of its catalog, and could send these rows
    # between the commit and the look at them.
    topic = f"omninode_bridge_test_backbone_{uuid.uuid4().hex[:8]}"

    def add_topic(data: dict[str, Any]) -> None:
        data["topics"].append({"name": topic, "description": "backbone tests", "dlq": "omninode_bridge_dlq_v1"})

    publisher = EventPublisher(load_catalog(contracts_copy(tmp_path, add_topic)), database)
    one, few, many, chained = _envelopes(1), _envelopes(3), _envelopes(500), _envelopes(1)
    # The CTE form gated by a module's own insert; here a VALUES row stands in for it.
    gate = select(text("1")).cte("gate")
    statement = select(select(text("count(*)")).select_from(staged_after(gate)).scalar_subquery())
    async with database.unit_of_work() as uow:
        await publisher.publish(uow, topic, one[0])
        await publisher.publish_many(uow, topic, few)
        await publisher.stage_many(uow, topic, many)
        staged = (await uow.session.execute(statement, publisher.staged_params(uow, topic, chained[0]))).scalar_one()
        await uow.commit()
    assert staged == 1
    everything = one + few + many + chained
    rows = await _outbox(settings.database.url or "", [e.event_id for e in everything])
    assert [r.event_id for r in rows] == [e.event_id for e in everything]
    by_form = {r.event_id: r for r in rows}
    for envelope in (one[0], few[0], many[0], chained[0]):
        row = by_form[envelope.event_id]
        assert (row.topic, row.key, row.event_type, row.pending) == (
            topic,
            envelope.correlation_id,
            "BackboneTest",
            True,
        )
        assert row.headers == {
            "event_type": "BackboneTest",
            "event_id": str(envelope.event_id),
            "envelope_version": "1.0",
        }
    assert len({bytes(r.envelope) for r in rows}) == len(rows)


async def test_a_rolled_back_batch_stages_nothing_and_unknown_topics_are_refused(
    settings: Settings, database: Database
) -> None:
    publisher = EventPublisher(load_catalog(), database)
    batch = _envelopes(50)
    async with database.unit_of_work() as uow:
        await publisher.stage_many(uow, TOPIC, batch)
        await uow.rollback()
    assert await _outbox(settings.database.url or "", [e.event_id for e in batch]) == []
    async with database.unit_of_work() as uow:
        with pytest.raises(CatalogError):
            await publisher.stage_many(uow, "no_such_topic_v1", batch)


async def test_claims_are_exactly_once_per_consumer_and_release_allows_a_second_run(database: Database) -> None:
    ids = [uuid.uuid4() for _ in range(4)]
    async with database.unit_of_work() as uow:
        assert await claim(uow, "backbone.a", ids[:3]) == set(ids[:3])
        await uow.commit()
    async with database.unit_of_work() as uow:
        assert await claim(uow, "backbone.a", ids) == {ids[3]}
        assert await claim(uow, "backbone.b", ids[:1]) == {ids[0]}  # another consumer has its own record
        assert await claim(uow, "backbone.a", []) == set()
        await uow.commit()
    async with database.unit_of_work() as uow:
        await release(uow, [("backbone.a", ids[0])])
        await uow.commit()
    async with database.unit_of_work() as uow:
        assert await claim(uow, "backbone.a", ids) == {ids[0]}
        await uow.rollback()


async def test_claim_and_log_logs_only_what_it_claimed_in_order(settings: Settings, database: Database) -> None:
    correlation = f"backbone-{uuid.uuid4()}"
    batch = _envelopes(5, correlation)
    async with database.unit_of_work() as uow:
        assert await claim(uow, "backbone.reducer", [batch[1].event_id]) == {batch[1].event_id}
        await uow.commit()
    async with database.unit_of_work() as uow:
        claimed = await claim_and_log(uow, "backbone.reducer", TOPIC, batch)
        await uow.commit()
    assert claimed == {e.event_id for e in batch} - {batch[1].event_id}
    entries, next_cursor = await _page(database, correlation)
    assert next_cursor is None
    # Newest first: the log holds the claimed events in the batch's order.
    assert [e.event_id for e in reversed(entries)] == [e.event_id for e in batch if e.event_id in claimed]
    assert {(e.direction, e.status, e.consumer, e.topic) for e in entries} == {
        ("consumed", "processed", "backbone.reducer", TOPIC)
    }


async def test_log_consumed_records_status_duration_and_error(database: Database) -> None:
    correlation = f"backbone-{uuid.uuid4()}"
    done, failed = _envelopes(2, correlation)
    async with database.unit_of_work() as uow:
        await log_consumed(uow, "backbone.c", TOPIC, [done], duration_ms=12.5)
        await log_consumed(uow, "backbone.c", TOPIC, [failed], status="dead_lettered", error="handler_error")
        await log_consumed(uow, "backbone.c", TOPIC, [])
        await uow.commit()
    entries, _ = await _page(database, correlation)
    assert [(e.event_id, e.status, e.duration_ms, e.error) for e in entries] == [
        (failed.event_id, "dead_lettered", None, "handler_error"),
        (done.event_id, "processed", 12.5, None),
    ]
    async with database.unit_of_work() as uow:
        first, cursor = await event_log_page(uow, limit=1, correlation_id=correlation)
        rest, last = await event_log_page(uow, limit=1, cursor=int(cursor or 0), correlation_id=correlation)
    assert [e.event_id for e in first + rest] == [failed.event_id, done.event_id]
    assert last is None


async def test_a_dead_letter_is_redriven_through_the_outbox_once(settings: Settings, database: Database) -> None:
    publisher = EventPublisher(load_catalog(), database)
    (envelope,) = _envelopes(1)
    dlq_topic = f"backbone_dlq_{uuid.uuid4().hex[:8]}"
    async with database.unit_of_work() as uow:
        await claim(uow, "backbone.d", [envelope.event_id])  # dead-lettering marks the event handled
        dead_letter_id = (
            await uow.session.execute(
                text(
                    'INSERT INTO event_dead_letters (consumer, topic, dlq_topic, partition, "offset", key, event_id, '
                    "event_type, value, error, attempts) VALUES ('backbone.d', :topic, :dlq, 0, 7, 'k', :e, "
                    "'BackboneTest', :v, 'handler_error', 3) RETURNING id"
                ),
                {"topic": TOPIC, "dlq": dlq_topic, "e": envelope.event_id, "v": b"original bytes"},
            )
        ).scalar_one()
        await uow.commit()
    async with database.unit_of_work() as uow:
        assert (await stored_dead_letter_counts(uow))[dlq_topic] == 1
        (latest,) = await latest_dead_letters(uow, limit=5, dlq_topic=dlq_topic)
        record = await lock_dead_letter(uow, dead_letter_id)
        assert record == latest
        assert record is not None
        (redriven,) = await redrive(uow, publisher, [record])
        await uow.commit()
    assert redriven.redriven_at is not None
    rows = await sql_rows(
        settings.database.url or "",
        "SELECT key, envelope, headers FROM event_outbox WHERE topic = :t AND headers->>'dead_letter_id' = :d",
        t=TOPIC,
        d=str(dead_letter_id),
    )
    assert [(r.key, bytes(r.envelope), r.headers["redriven_from"]) for r in rows] == [
        ("k", b"original bytes", dlq_topic)
    ]
    async with database.unit_of_work() as uow:
        assert dlq_topic not in await stored_dead_letter_counts(uow)
        assert await claim(uow, "backbone.d", [envelope.event_id]) == {envelope.event_id}  # released
        assert await lock_dead_letter(uow, -1) is None
        await uow.rollback()


async def _page(database: Database, correlation_id: str) -> tuple[list[Any], str | None]:
    async with database.unit_of_work() as uow:
        return await event_log_page(uow, limit=50, correlation_id=correlation_id)
