"""Envelopes (canonical payload hash, poison detection) and the topic catalog, without a broker."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import msgspec
import pytest

from omninode_bridge.app import create_app
from omninode_bridge.core.events import (
    CatalogError,
    InvalidEnvelopeError,
    decode_envelope,
    encode_envelope,
    encoded_envelopes,
    event_ids,
    load_catalog,
    new_envelope,
    payload_hash,
)
from omninode_bridge.core.module import Module
from omninode_bridge.settings import Settings
from tests.support.contracts_helper import contracts_copy
from tests.support.kafka_helpers import verify_envelope

STATUS_TOPIC = "omninode_codegen_status_session_v1"


def test_envelope_round_trip_and_poison_detection() -> None:
    envelope = new_envelope(event_type="X", payload={"b": 1, "a": "é"}, session_id=uuid.uuid4())
    data = encode_envelope(envelope)
    assert decode_envelope(data) == envelope
    verify_envelope(data)
    with pytest.raises(InvalidEnvelopeError, match="malformed"):
        decode_envelope(b"{not json")
    tampered = json.loads(data)
    tampered["payload"]["b"] = 2
    with pytest.raises(InvalidEnvelopeError, match="payload_hash"):
        decode_envelope(json.dumps(tampered).encode())


def test_catalog_has_the_seed_topics_and_rejects_unknown_ones() -> None:
    catalog = load_catalog()
    codegen = [t for t in catalog.topics if t.startswith("omninode_codegen_")]
    assert len(codegen) == 13
    assert catalog.partitions(STATUS_TOPIC) == 6
    assert catalog.dlq_for("omninode_codegen_request_analyze_v1") == "omninode_codegen_dlq_analyze_v1"
    assert {"omninode_system_alerts", "omninode_bridge_hook_events_v1", "omninode_bridge_stamps_v1"} <= set(
        catalog.topics
    )
    with pytest.raises(CatalogError, match="no_such_topic"):
        catalog.require("no_such_topic")


def test_invalid_catalog_fails_to_load(tmp_path: Path) -> None:
    def bad_dlq(data: dict[str, Any]) -> None:
        data["topics"][0]["dlq"] = "omninode_bridge_stamps_v1"  # not a DLQ topic

    with pytest.raises(CatalogError, match="dlq"):
        load_catalog(contracts_copy(tmp_path, bad_dlq))


def test_unknown_topic_in_code_is_a_start_up_error(settings: Settings) -> None:
    rogue = Module(name="rogue", publishes=["not_in_the_catalog_v1"])
    with pytest.raises(CatalogError, match="not_in_the_catalog_v1"):
        create_app(settings, modules=[rogue])


def test_event_ids_are_time_ordered_uuid7() -> None:
    first, second = event_ids(500), event_ids(500)
    assert {i.version for i in first + second} == {7}
    assert len(set(first + second)) == 1000
    # Time first (to the millisecond): a later draw never sorts before an earlier one's millisecond.
    assert max(i.int >> 80 for i in first) <= min(i.int >> 80 for i in second)
    assert new_envelope(event_type="T", payload={}).event_id.version == 7


@pytest.mark.parametrize("count", [0, 1, 7, 8, 9, 300, 70_000])
def test_event_ids_of_any_count_are_uuid7(count: int) -> None:
    # Below 8 ids they are built one by one, from 8 laid out at once (the MessagePack header changes at 65,536).
    ids = event_ids(count)
    assert len(set(ids)) == count
    assert all(i.version == 7 and i.variant == uuid.RFC_4122 for i in ids)
    assert len({i.int >> 80 for i in ids}) <= 2  # one clock read (two only if a millisecond passed at the edge)


class _Payload(msgspec.Struct, kw_only=True):
    run_id: uuid.UUID
    name: str
    output: Any = None
    error: str | None = None


def test_encoded_envelopes_match_new_envelope() -> None:
    struct = _Payload(run_id=uuid.uuid4(), name="é", output={"z": 1, "a": [1, {"y": 2.5, "b": None}]})
    events = [("RunStarted", struct, "run-1"), ("X", {"b": 1, "a": "é"}, "run-2")]
    heads = encoded_envelopes(events, source="tests")
    assert [h.timestamp for h in heads] == [heads[0].timestamp] * 2  # one clock read
    for head, (event_type, payload, key) in zip(heads, events, strict=True):
        # What a consumer reads is what new_envelope would have published: same payload, same hash.
        expected = new_envelope(event_type=event_type, payload=payload, correlation_id=key, source="tests")
        decoded = decode_envelope(encode_envelope(head))
        assert decoded.payload == expected.payload
        assert head.payload_hash == expected.payload_hash == payload_hash(expected.payload)
        assert (decoded.event_type, decoded.correlation_id, decoded.source) == (event_type, key, "tests")
        assert decoded.event_id == head.event_id
        assert head.event_id.version == 7
