"""NodeBridgeReducer's pure logic: grouping by namespace, its contract FSM, the event types it counts."""

from __future__ import annotations

import asyncio
import uuid

import msgspec
import pytest

from omninode_bridge.core.contracts import contracts_dir
from omninode_bridge.core.events import InvalidEnvelopeError, encode_envelope, new_envelope
from omninode_bridge.core.steps import IllegalTransitionError
from omninode_bridge.modules.reducer import NamespaceReducer, aggregate, load_reducer_contract
from omninode_bridge.modules.reducer.consumers import InFlight
from omninode_bridge.modules.reducer.services import StampBatch
from omninode_bridge.modules.stamping import StampCreated
from omninode_bridge.settings import Settings


def _item(namespace: str, size: int, content_type: str = "text/plain") -> StampCreated:
    return StampCreated(namespace=namespace, size_bytes=size, content_type=content_type, workflow_id=uuid.uuid4(),
                        stamp_id=uuid.uuid4(), file_hash="0" * 64, key_id="k")  # fmt: skip


def test_namespace_grouping() -> None:
    items = [_item("a", 10), _item("b", 5, "image/png"), _item("a", 7, "application/pdf"), _item("a", 1)]
    groups = aggregate(items, keep_workflow_ids=2)
    assert groups["a"].total_stamps == 3
    assert groups["a"].total_size_bytes == 18
    assert groups["a"].file_types == {"text/plain", "application/pdf"}
    assert groups["a"].workflow_ids == [items[3].workflow_id, items[2].workflow_id]
    assert groups["b"].total_stamps == 1


def test_reducer_fsm_follows_the_contract(settings: Settings) -> None:
    reducer = NamespaceReducer(load_reducer_contract(contracts_dir(settings.server.contracts_dir)))
    assert reducer.state == "IDLE"
    with pytest.raises(IllegalTransitionError):
        reducer.transition("PERSISTING")  # IDLE may only go to AGGREGATING
    reducer.transition("AGGREGATING")
    reducer.transition("PERSISTING")
    reducer.transition("IDLE")


def test_reducer_counts_only_its_event_types(settings: Settings) -> None:
    reducer = NamespaceReducer(load_reducer_contract(contracts_dir(settings.server.contracts_dir)))
    item = _item("n", 3)
    stamp = encode_envelope(new_envelope(event_type="STAMP_CREATED", payload=item))
    other = encode_envelope(new_envelope(event_type="HASH_GENERATED", payload={"anything": 1}))
    event = reducer.decode(stamp)
    assert event is not None
    assert isinstance(event[1], StampCreated)  # decoded straight to the payload type
    assert msgspec.structs.asdict(event[1]) == msgspec.structs.asdict(item)
    assert reducer.decode(other) is None


def test_reducer_decodes_payloads_of_older_producers_and_refuses_tampered_ones(settings: Settings) -> None:
    reducer = NamespaceReducer(load_reducer_contract(contracts_dir(settings.server.contracts_dir)))
    payload = {"namespace": "n", "size_bytes": 3, "content_type": "text/plain", "workflow_id": str(uuid.uuid4()),
               "stamp_id": str(uuid.uuid4()), "file_hash": "0" * 64, "key_id": "k"}  # fmt: skip
    # Without file_path (a field with a default): the typed value's encoding is not what was hashed.
    event = reducer.decode(encode_envelope(new_envelope(event_type="STAMP_CREATED", payload=payload)))
    assert event is not None
    assert (event[1].namespace, event[1].size_bytes, event[1].file_path) == ("n", 3, None)
    tampered = new_envelope(event_type="STAMP_CREATED", payload=payload)
    forged = encode_envelope(tampered).replace(b'"size_bytes":3', b'"size_bytes":4')
    with pytest.raises(InvalidEnvelopeError, match="payload_hash"):
        reducer.decode(forged)
    wrong_shape = encode_envelope(new_envelope(event_type="STAMP_CREATED", payload={"namespace": "n"}))
    with pytest.raises(InvalidEnvelopeError, match="unexpected payload"):
        reducer.decode(wrong_shape)


def test_reducer_fsm_lets_the_next_window_fill_while_a_batch_is_written(settings: Settings) -> None:
    reducer = NamespaceReducer(load_reducer_contract(contracts_dir(settings.server.contracts_dir)))
    reducer.transition("AGGREGATING")
    reducer.transition("PERSISTING")
    reducer.transition("AGGREGATING")  # the next window's first item, the previous batch still in flight
    reducer.transition("PERSISTING")
    reducer.transition("IDLE")


def test_a_batch_keeps_columns_and_skips_a_repeated_event_id(settings: Settings) -> None:
    reducer = NamespaceReducer(load_reducer_contract(contracts_dir(settings.server.contracts_dir)))
    items = [_item("a", 10), _item("b", 5, "image/png")]
    values = [encode_envelope(new_envelope(event_type="STAMP_CREATED", payload=item)) for item in items]
    batch = reducer.new_batch()
    for value in [values[0], values[1], values[0]]:  # the first event delivered twice
        event = reducer.decode(value)
        assert event is not None
        batch.add(event)
    assert len(batch) == 2
    assert batch.namespaces == ["a", "b"]
    assert batch.sizes == [10, 5]
    assert batch.content_types == ["text/plain", "image/png"]
    assert batch.workflow_ids == [items[0].workflow_id, items[1].workflow_id]
    assert batch.types == ["STAMP_CREATED", "STAMP_CREATED"]


async def test_one_batch_in_flight_and_collected_in_order() -> None:
    started: list[int] = []
    release = asyncio.Event()

    async def write(batch: StampBatch) -> int:
        started.append(len(batch))
        await release.wait()
        return len(batch)

    inflight = InFlight(write)
    first = StampBatch()
    first.ids[uuid.uuid4()] = None
    await inflight.start(first)
    assert started == [1]  # running (its statement sent) before start returns
    assert inflight.busy
    assert not inflight.done()
    with pytest.raises(RuntimeError, match="in flight"):
        await inflight.start(StampBatch())
    release.set()
    assert await inflight.wait() == 1
    assert not inflight.busy
    assert inflight.done()
    assert await inflight.wait() == 0  # nothing in flight
    release.clear()
    await inflight.start(StampBatch())
    await inflight.cancel()  # abandoned: its offsets would not be committed
    assert not inflight.busy
