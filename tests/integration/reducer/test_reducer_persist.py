"""The reducer's one-statement persist against PostgreSQL: the SQL grouping matches the in-memory one."""

from __future__ import annotations

import uuid

import msgspec
from sqlalchemy import text

from omninode_bridge.core.contracts import contracts_dir
from omninode_bridge.core.db import Database
from omninode_bridge.core.events import decode_envelope, encode_envelope, new_envelope
from omninode_bridge.modules.reducer import NamespaceReducer, aggregate, load_reducer_contract
from omninode_bridge.modules.reducer.consumers import persist_with_retry
from omninode_bridge.modules.reducer.services import StampBatch, namespace_stats
from omninode_bridge.modules.stamping import StampCreated
from omninode_bridge.settings import Settings

TOPIC = "omninode_bridge_stamps_v1"


def _reducer(settings: Settings, keep: int) -> NamespaceReducer:
    contract = load_reducer_contract(contracts_dir(settings.server.contracts_dir))
    aggregation = msgspec.structs.replace(
        contract.aggregation,
        input=msgspec.structs.replace(contract.aggregation.input, consumer=f"test.{uuid.uuid4().hex[:8]}"),
        recent_workflow_ids=keep,
    )
    return NamespaceReducer(msgspec.structs.replace(contract, aggregation=aggregation))


async def test_one_statement_counts_like_in_memory_grouping_and_once(settings: Settings, database: Database) -> None:
    reducer = _reducer(settings, keep=3)
    namespaces = [f"persist-{uuid.uuid4().hex[:8]}" for _ in range(3)]
    types = ["text/plain", "image/png", "application/pdf", "text/plain"]
    items = [
        StampCreated(stamp_id=uuid.uuid4(), workflow_id=uuid.uuid4(), file_hash="0" * 64, namespace=namespaces[i % 3],
                     content_type=types[i % 4], size_bytes=100 + i, key_id="k")
        for i in range(40)
    ]  # fmt: skip
    values = [encode_envelope(new_envelope(event_type="STAMP_CREATED", payload=item)) for item in items]

    def batch_of(chunk: list[bytes]) -> StampBatch:
        batch = reducer.new_batch()
        for value in chunk:
            event = reducer.decode(value)
            assert event is not None
            batch.add(event)
        return batch

    first = batch_of(values[:25] + values[:5])  # five events twice within the batch
    assert await persist_with_retry(reducer, database, first, TOPIC) == 25
    # A redelivery of the first batch's events with the rest: only the rest counts.
    second = batch_of(values[20:])
    assert await persist_with_retry(reducer, database, second, TOPIC) == 15
    assert await persist_with_retry(reducer, database, batch_of(values), TOPIC) == 0
    # Each event claimed and logged once: the cheaper first statement of a batch with a redelivered event
    # failed as a whole, and the conflict-safe one claimed and logged only the new ones.
    async with database.unit_of_work() as uow:
        claims = await uow.session.scalar(
            text("SELECT count(*) FROM event_processed WHERE consumer = :c"), {"c": reducer.consumer}
        )
        logged = (await uow.session.execute(
            text("SELECT event_id FROM event_logs WHERE consumer = :c ORDER BY id"), {"c": reducer.consumer}
        )).scalars().all()  # fmt: skip
    assert claims == 40
    assert logged == [decode_envelope(value).event_id for value in values]

    first_groups, second_groups = aggregate(items[:25], 3), aggregate(items[25:], 3)
    for namespace in namespaces:
        async with database.unit_of_work() as uow:
            stats = await namespace_stats(uow, namespace)
        assert stats is not None
        expected = [g for g in (first_groups.get(namespace), second_groups.get(namespace)) if g is not None]
        assert stats.total_stamps == stats.workflow_count == sum(g.total_stamps for g in expected)
        assert stats.total_size_bytes == sum(g.total_size_bytes for g in expected)
        assert stats.unique_file_types == sorted(set().union(*(g.file_types for g in expected)))
        # Newest first across batches, at most ``recent_workflow_ids`` of them.
        assert stats.recent_workflow_ids == [w for g in reversed(expected) for w in g.workflow_ids][:3]
        assert stats.version == len(expected)
        assert stats.current_fsm_state == "PERSISTING"
