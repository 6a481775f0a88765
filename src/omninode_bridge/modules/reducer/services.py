"""NodeBridgeReducer: namespace aggregation of stamp events, persisted idempotently per batch."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field

from prometheus_client import Counter, Gauge
from sqlalchemy import select
from uuid_utils.compat import uuid7

from omninode_bridge.core.db import UnitOfWork
from omninode_bridge.core.events import (
    EnvelopeHead,
    PayloadDecoder,
    already_claimed,
    claim_and_log_args,
    claim_and_log_sql,
    decode_head,
)
from omninode_bridge.core.steps import StateMachine
from omninode_bridge.modules.reducer.contract import ReducerContract
from omninode_bridge.modules.reducer.models import BridgeState
from omninode_bridge.modules.reducer.schemas import NamespaceStats
from omninode_bridge.modules.stamping import StampCreated

__all__ = ["NamespaceAggregate", "NamespaceReducer", "StampBatch", "StampEvent", "aggregate", "namespace_stats"]

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


# The whole batch in one statement, committed by itself (one round trip): claim the event ids, log the claimed
# ones, then NAMESPACE_GROUPING of what was claimed and one additive upsert per namespace. The items go as
# parallel arrays ($9-$12, the order of $2's ids), so the text and its plan do not vary with the batch.
# Additive, so concurrent reducers never lose an update; rows in namespace order, so two of them never
# deadlock; ``version`` tells readers (and optimistic writers) that the row changed. $13 FSM state, $14
# time, $15 recent ids kept, $16/$17 a fresh row id for each namespace of the batch. Returns the count.
# Two texts with the same parameters: the usual batch, none of whose ids was claimed before, is claimed
# with a plain insert and counted whole (``_PERSIST_NEW``); the statement fails as a whole if one id was
# (a redelivery), and ``_PERSIST`` then claims and counts only the ids it newly claims.
_ITEMS = """unnest($2::uuid[], $9::varchar[], $10::bigint[], $11::text[], $12::uuid[])
         WITH ORDINALITY AS i(event_id, namespace, size, content_type, workflow_id, n)"""
_APPLY = """
, fresh AS (
    SELECT i.namespace, i.size, i.content_type, i.workflow_id, i.n
    FROM {fresh}
), grouped AS (
    SELECT f.namespace, count(*) AS stamps, sum(f.size)::bigint AS bytes,
           array_agg(DISTINCT f.content_type ORDER BY f.content_type) AS types,
           (array_agg(f.workflow_id ORDER BY f.n DESC))[1:$15::integer] AS recent
    FROM fresh AS f
    GROUP BY f.namespace
), upserted AS (
    INSERT INTO bridge_states AS s (id, namespace, version, metadata_version, total_stamps, total_size_bytes,
                                    unique_file_types, workflow_count, recent_workflow_ids, current_fsm_state,
                                    created_at, last_updated)
    SELECT k.id, g.namespace, 1, '0.1', g.stamps, g.bytes, g.types, g.stamps, g.recent, $13::varchar,
           $14::timestamptz, $14::timestamptz
    FROM grouped AS g JOIN unnest($16::varchar[], $17::uuid[]) AS k(namespace, id) USING (namespace)
    ORDER BY g.namespace
    ON CONFLICT (namespace) DO UPDATE SET
        version = s.version + 1,
        total_stamps = s.total_stamps + excluded.total_stamps,
        total_size_bytes = s.total_size_bytes + excluded.total_size_bytes,
        unique_file_types = ARRAY(
            SELECT DISTINCT t FROM unnest(s.unique_file_types || excluded.unique_file_types) AS t ORDER BY t
        ),
        workflow_count = s.workflow_count + excluded.workflow_count,
        recent_workflow_ids = (excluded.recent_workflow_ids || s.recent_workflow_ids)[1:$15::integer],
        current_fsm_state = excluded.current_fsm_state,
        last_updated = excluded.last_updated
)
SELECT count(*) FROM fresh
"""
_PERSIST = claim_and_log_sql(_APPLY.format(fresh=f"{_ITEMS}\n    JOIN claimed USING (event_id)"))
_PERSIST_NEW = claim_and_log_sql(_APPLY.format(fresh=_ITEMS), new=True)


class StampBatch:
    """A window of countable events, kept as the parallel arrays its statement sends (no object per event).

    Each event adds its fields to the columns and is dropped: a window of thousands holds strings, ids
    and ints, not thousands of decoded envelopes. An event id already in the batch (a duplicate the relay
    sent) is skipped, so the ids are distinct, as the claim needs.
    """

    __slots__ = ("content_types", "correlations", "ids", "namespaces", "sizes", "types", "workflow_ids")

    def __init__(self) -> None:
        self.ids: dict[uuid.UUID, None] = {}  # insertion-ordered and O(1) membership
        self.types: list[str] = []
        self.correlations: list[str] = []
        self.namespaces: list[str] = []
        self.sizes: list[int] = []
        self.content_types: list[str] = []
        self.workflow_ids: list[uuid.UUID] = []

    def __len__(self) -> int:
        return len(self.ids)

    def add(self, event: StampEvent) -> None:
        """Add a decoded event (a second one with the same event id is ignored)."""
        head, stamp = event
        ids = self.ids
        if head.event_id in ids:
            return
        ids[head.event_id] = None
        self.types.append(head.event_type)
        self.correlations.append(head.correlation_id)
        self.namespaces.append(stamp.namespace)
        self.sizes.append(stamp.size_bytes)
        self.content_types.append(stamp.content_type)
        self.workflow_ids.append(stamp.workflow_id)


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

    async def persist(self, uow: UnitOfWork, batch: StampBatch, topic: str) -> int:
        """Count a batch once, in one statement; returns the items counted.

        Events this consumer already processed (a redelivery, or a duplicate the relay sent) are skipped
        because their ``event_processed`` row exists; the claim, the event-log rows and the upsert commit
        together, as one statement on a pooled connection (no session, no ``BEGIN``/``COMMIT`` round trips).
        A batch with such an event costs a second statement: the first, cheaper one assumes none.
        """
        if not batch:
            return 0
        namespaces = sorted(set(batch.namespaces))
        args = claim_and_log_args(self.consumer, topic, list(batch.ids), batch.types, batch.correlations)
        args += [
            batch.namespaces, batch.sizes, batch.content_types, batch.workflow_ids, "PERSISTING",
            dt.datetime.now(dt.UTC), self.spec.recent_workflow_ids, namespaces, [uuid7() for _ in namespaces],
        ]  # fmt: skip
        async with uow.pooled_driver() as driver:
            try:
                counted: int = await driver.fetchval(_PERSIST_NEW, *args)
            except Exception as exc:
                if not already_claimed(exc):
                    raise
                counted = await driver.fetchval(_PERSIST, *args)
        _counted.inc(counted)
        _duplicates.inc(len(batch) - counted)
        return counted

    def new_batch(self) -> StampBatch:
        """An empty window."""
        return StampBatch()


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
