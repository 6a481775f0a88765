"""NodeBridgeReducer: namespace aggregation of stamp events, persisted idempotently per batch."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import msgspec
from prometheus_client import Counter, Gauge
from sqlalchemy import func, literal_column, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from uuid_utils.compat import uuid7

from omninode_bridge.core.db import UnitOfWork
from omninode_bridge.core.events import OnexEnvelopeV1, claim_and_log
from omninode_bridge.core.steps import StateMachine
from omninode_bridge.modules.reducer.contract import ReducerContract
from omninode_bridge.modules.reducer.models import BridgeState
from omninode_bridge.modules.reducer.schemas import NamespaceStats
from omninode_bridge.modules.stamping import StampCreated

__all__ = ["NamespaceAggregate", "NamespaceReducer", "aggregate", "namespace_stats"]

items_total = Counter("omninode_reducer_items_total", "Stamp events the reducer counted, by outcome.", ["outcome"])
state_gauge = Gauge("omninode_reducer_fsm_state", "1 for the reducer's current FSM state.", ["state"])


_to_item = msgspec.convert


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

    def items_of(self, envelopes: Sequence[OnexEnvelopeV1]) -> list[tuple[OnexEnvelopeV1, StampCreated]]:
        """The countable events of a batch, first occurrence of each event id only."""
        seen: set[uuid.UUID] = set()
        items = []
        for envelope in envelopes:
            if envelope.event_type not in self._counted_types or envelope.event_id in seen:
                continue
            seen.add(envelope.event_id)
            items.append((envelope, _to_item(envelope.payload, StampCreated)))
        return items

    async def persist(self, uow: UnitOfWork, envelopes: Sequence[OnexEnvelopeV1], topic: str) -> int:
        """Count a batch once: claim its event ids, then one upsert per namespace; returns items counted.

        Events this consumer already processed (a redelivery, or a duplicate the relay sent) are skipped
        because their ``event_processed`` row exists; the claim and the upserts commit together.
        """
        items = self.items_of(envelopes)
        if not items:
            return 0
        # The claim and the event-log rows of what it claimed, in one statement of array parameters (not
        # one bind parameter per row: several times faster than multi-row VALUES through the ORM).
        claimed = await claim_and_log(uow, self.consumer, topic, [envelope for envelope, _ in items])
        fresh = [item for envelope, item in items if envelope.event_id in claimed]
        items_total.labels(outcome="duplicate").inc(len(items) - len(fresh))
        if not fresh:
            return 0
        groups = aggregate(fresh, self.spec.recent_workflow_ids)
        now = dt.datetime.now(dt.UTC)
        statement = pg_insert(BridgeState).values([
            {"id": uuid7(), "namespace": namespace, "version": 1, "metadata_version": "0.1",
             "total_stamps": group.total_stamps, "total_size_bytes": group.total_size_bytes,
             "unique_file_types": sorted(group.file_types), "workflow_count": group.total_stamps,
             "recent_workflow_ids": group.workflow_ids, "current_fsm_state": self.state, "created_at": now,
             "last_updated": now}
            for namespace, group in sorted(groups.items())
        ])  # fmt: skip
        current, new = BridgeState.__table__.c, statement.excluded
        keep = self.spec.recent_workflow_ids
        # One atomic upsert per namespace: additive, so concurrent reducers never lose an update, and the
        # version column tells readers (and optimistic writers) that the row changed.
        await uow.session.execute(
            statement.on_conflict_do_update(
                index_elements=["namespace"],
                set_={
                    "version": current.version + 1,
                    "total_stamps": current.total_stamps + new.total_stamps,
                    "total_size_bytes": current.total_size_bytes + new.total_size_bytes,
                    "unique_file_types": select(func.array_agg(literal_column("t").distinct()))
                    .select_from(func.unnest(current.unique_file_types.concat(new.unique_file_types)).alias("t"))
                    .scalar_subquery(),
                    "workflow_count": current.workflow_count + new.workflow_count,
                    "recent_workflow_ids": new.recent_workflow_ids.concat(current.recent_workflow_ids)[1:keep],
                    "current_fsm_state": new.current_fsm_state,
                    "last_updated": new.last_updated,
                },
            )
        )
        items_total.labels(outcome="counted").inc(len(fresh))
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
