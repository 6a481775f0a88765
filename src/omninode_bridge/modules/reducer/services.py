"""NodeBridgeReducer: namespace aggregation of stamp events, persisted idempotently per batch."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import msgspec
from prometheus_client import Counter, Gauge
from sqlalchemy import select
from uuid_utils.compat import uuid7

from omninode_bridge.core.db import UnitOfWork
from omninode_bridge.core.events import EnvelopeHead, PayloadDecoder, claim_and_log, decode_head
from omninode_bridge.core.steps import StateMachine
from omninode_bridge.modules.reducer.contract import ReducerContract
from omninode_bridge.modules.reducer.models import BridgeState
from omninode_bridge.modules.reducer.schemas import NamespaceStats
from omninode_bridge.modules.stamping import StampCreated

__all__ = ["NamespaceAggregate", "NamespaceReducer", "StampEvent", "aggregate", "namespace_stats"]

items_total = Counter("omninode_reducer_items_total", "Stamp events the reducer counted, by outcome.", ["outcome"])
state_gauge = Gauge("omninode_reducer_fsm_state", "1 for the reducer's current FSM state.", ["state"])
_counted = items_total.labels(outcome="counted")
_duplicates = items_total.labels(outcome="duplicate")

StampEvent = tuple[EnvelopeHead, StampCreated]
"""A countable event of a batch: its envelope (ids, type, correlation) and its payload, decoded once."""


class _Stamp(StampCreated, gc=False):
    """``StampCreated`` untracked by the garbage collector (strings, ids and numbers: no cycle possible), so
    that a window of thousands does not lengthen every collection (measured: decoding took twice as long)."""


_stamps = PayloadDecoder(_Stamp)


class _Group(msgspec.Struct):
    """One namespace's row of the upsert, as JSON (``jsonb_to_recordset`` turns its lists into arrays)."""

    id: uuid.UUID
    namespace: str
    stamps: int
    bytes: int
    types: list[str]
    recent: list[uuid.UUID]


_groups_json = msgspec.json.Encoder()

# One atomic upsert for every namespace of a batch, its rows given as one JSON parameter (a batch holds a
# handful of namespaces; per-row bind parameters would make the statement's text, and its plan, vary
# with their number). Additive, so concurrent reducers never lose an update; ``version`` tells readers
# (and optimistic writers) that the row changed. $1 rows, $2 FSM state, $3 time, $4 recent ids kept.
_UPSERT = """
INSERT INTO bridge_states AS s (id, namespace, version, metadata_version, total_stamps, total_size_bytes,
                                unique_file_types, workflow_count, recent_workflow_ids, current_fsm_state,
                                created_at, last_updated)
SELECT g.id, g.namespace, 1, '0.1', g.stamps, g.bytes, g.types, g.stamps, g.recent, $2::varchar, $3::timestamptz,
       $3::timestamptz
FROM jsonb_to_recordset($1::jsonb) AS g(id uuid, namespace varchar, stamps bigint, bytes bigint, types text[],
                                      recent uuid[])
ORDER BY g.namespace
ON CONFLICT (namespace) DO UPDATE SET
    version = s.version + 1,
    total_stamps = s.total_stamps + excluded.total_stamps,
    total_size_bytes = s.total_size_bytes + excluded.total_size_bytes,
    unique_file_types = ARRAY(
        SELECT DISTINCT t FROM unnest(s.unique_file_types || excluded.unique_file_types) AS t ORDER BY t
    ),
    workflow_count = s.workflow_count + excluded.workflow_count,
    recent_workflow_ids = (excluded.recent_workflow_ids || s.recent_workflow_ids)[1:$4::integer],
    current_fsm_state = excluded.current_fsm_state,
    last_updated = excluded.last_updated
"""


@dataclass(slots=True)
class NamespaceAggregate:
    """Totals of one namespace within one batch."""

    total_stamps: int = 0
    total_size_bytes: int = 0
    file_types: set[str] = field(default_factory=set)
    workflow_ids: list[uuid.UUID] = field(default_factory=list)


def aggregate(items: Iterable[StampCreated], keep_workflow_ids: int) -> dict[str, NamespaceAggregate]:
    """NAMESPACE_GROUPING: count, sum of sizes, distinct content types and the latest workflow ids."""
    groups: dict[str, NamespaceAggregate] = {}
    for item in items:
        group = groups.get(item.namespace)
        if group is None:
            group = groups[item.namespace] = NamespaceAggregate()
        group.total_stamps += 1
        group.total_size_bytes += item.size_bytes
        group.file_types.add(item.content_type)
        group.workflow_ids.append(item.workflow_id)
    for group in groups.values():
        group.workflow_ids = group.workflow_ids[-keep_workflow_ids:][::-1] if keep_workflow_ids else []
    return groups


class NamespaceReducer:
    """Aggregates batches of stamp events and persists them, following the reducer contract.

    Args:
        contract: The validated reducer contract.
    """

    def __init__(self, contract: ReducerContract) -> None:
        self.contract = contract
        self.spec = contract.aggregation
        self.consumer = contract.aggregation.input.consumer
        self.fsm = StateMachine(contract.name, contract.fsm)
        self.state = self.fsm.initial
        self._counted_types = frozenset(contract.aggregation.input.event_types)
        state_gauge.labels(state=self.state).set(1)

    def transition(self, target: str) -> None:
        """Move the reducer's FSM (IDLE -> AGGREGATING -> PERSISTING -> IDLE), refusing illegal moves."""
        if target == self.state:
            return
        self.fsm.check(self.state, target)
        state_gauge.labels(state=self.state).set(0)
        state_gauge.labels(state=target).set(1)
        self.state = target

    def decode(self, value: bytes) -> StampEvent | None:
        """The countable event a record holds, or None for an event type the reducer does not count.

        The payload of a counted event is decoded straight to :class:`StampCreated` and checked against
        its ``payload_hash``; the payload of another type is not read (the reducer applies nothing of it).

        Raises:
            InvalidEnvelopeError: Not an envelope, or a counted event whose payload is not a valid,
                untampered ``StampCreated``.
        """
        head = decode_head(value)
        if head.event_type not in self._counted_types:
            return None
        return head, _stamps.decode(head)

    async def persist(self, uow: UnitOfWork, events: Sequence[StampEvent], topic: str) -> int:
        """Count a batch once: claim its event ids, then one upsert for all its namespaces; returns items counted.

        Events this consumer already processed (a redelivery, or a duplicate the relay sent) are skipped
        because their ``event_processed`` row exists; the claim and the upsert commit together. Two
        statements per batch, whatever its size, each with array (or one JSON) parameters.
        """
        distinct: dict[uuid.UUID, StampEvent] = {}
        for event in events:
            distinct.setdefault(event[0].event_id, event)
        if not distinct:
            return 0
        # The claim and the event-log rows of what it claimed, in one statement of array parameters.
        claimed = await claim_and_log(uow, self.consumer, topic, [head for head, _ in distinct.values()])
        fresh = [item for event_id, (_, item) in distinct.items() if event_id in claimed]
        _duplicates.inc(len(distinct) - len(fresh))
        if not fresh:
            return 0
        keep = self.spec.recent_workflow_ids
        rows = [
            _Group(uuid7(), namespace, group.total_stamps, group.total_size_bytes, sorted(group.file_types),
                   group.workflow_ids)
            for namespace, group in sorted(aggregate(fresh, keep).items())
        ]  # fmt: skip
        driver = await uow.driver_connection()
        await driver.execute(_UPSERT, _groups_json.encode(rows).decode(), self.state, dt.datetime.now(dt.UTC), keep)
        _counted.inc(len(fresh))
        return len(fresh)


async def namespace_stats(uow: UnitOfWork, namespace: str) -> NamespaceStats | None:
    """The persisted aggregate of ``namespace``, or None if nothing was counted for it yet."""
    row = await uow.session.scalar(select(BridgeState).where(BridgeState.namespace == namespace))
    if row is None:
        return None
    return NamespaceStats(
        namespace=row.namespace, total_stamps=row.total_stamps, total_size_bytes=row.total_size_bytes,
        unique_file_types=sorted(row.unique_file_types), workflow_count=row.workflow_count,
        recent_workflow_ids=list(row.recent_workflow_ids), version=row.version,
        current_fsm_state=row.current_fsm_state, created_at=row.created_at, last_updated=row.last_updated,
    )  # fmt: skip
