"""The reducer's items/s at the contract's batch, 1,000 and 5,000, with the CPU each side spends per 1,000 events.

Shared by ``bench.reducer``, ``bench.suite`` and ``bench.stamping``. On a shared 2-core machine the items/s
move with the load; the CPU per 1,000 events (this process: decoding, the statement's arguments, the
driver; PostgreSQL: every process of the server, backends, WAL writer and checkpointer) holds under load.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import msgspec
import psutil

from omninode_bridge.core.contracts import contracts_dir
from omninode_bridge.core.db import Database
from omninode_bridge.core.events import encode_envelope, event_ids, new_envelope
from omninode_bridge.modules.reducer import NamespaceReducer, aggregate, load_reducer_contract
from omninode_bridge.modules.reducer.consumers import InFlight, persist_with_retry
from omninode_bridge.modules.stamping import StampCreated
from omninode_bridge.settings import load_settings

__all__ = ["ReducerRun", "postgres_cpu", "reducer_runs"]

STAMPS_TOPIC = "omninode_bridge_stamps_v1"


@dataclass(frozen=True, slots=True)
class ReducerRun:
    """One batch size's figures."""

    batch: int
    items_per_s: float
    memory_items_per_s: float
    client_cpu_ms: float
    """This process's CPU per 1,000 events while persisting (decoding included)."""
    postgres_cpu_ms: float | None
    """PostgreSQL's CPU per 1,000 events, all of its processes (None when not measured)."""


def postgres_cpu(data_dir: Path) -> Callable[[], float]:
    """A reader of the CPU seconds spent so far by the PostgreSQL server of ``data_dir`` and its processes.

    Processes that exit between two readings (an autovacuum worker) take their seconds with them: compare
    readings over runs long enough for that to be noise.
    """
    postmaster = psutil.Process(int((data_dir / "postmaster.pid").read_text().split()[0]))

    def read() -> float:
        total = 0.0
        for process in [postmaster, *postmaster.children(recursive=True)]:
            try:
                times = process.cpu_times()
            except psutil.NoSuchProcess:
                continue
            total += times.user + times.system
        return total

    return read


def _cpu() -> float:
    times = psutil.Process().cpu_times()
    return times.user + times.system


async def reducer_runs(
    database_url: str,
    items: int,
    *,
    postgres: Callable[[], float] | None = None,
    correlation: Literal["uuid4", "uuid7"] = "uuid4",
) -> list[ReducerRun]:
    """Reducer decoding and persistence at the contract's batch, 1,000 and 5,000.

    Each batch is decoded from the envelope bytes the relay sends (as the consumer does), then claimed,
    logged, grouped and upserted in one autocommitted statement, through the consumer's pipeline (the
    next batch is decoded while the previous one's statement runs). The baseline, from the same run, is
    the in-memory part alone: decoding (hash checked) and NAMESPACE_GROUPING, nothing persisted.

    Args:
        database_url: The database, migrated.
        items: Events per batch size.
        postgres: A reader of the server's CPU seconds (:func:`postgres_cpu`), to report its CPU per event.
        correlation: The events' correlation ids: random ``uuid4`` strings (what a request gets today) or
            time-ordered ``uuid7`` ones (the event log's correlation index then inserts at its right edge).
    """
    settings = load_settings({"OMNINODE_DATABASE_URL": database_url}, env_file=None)
    contract = load_reducer_contract(contracts_dir(settings.server.contracts_dir))
    correlations = [str(u) for u in event_ids(items)] if correlation == "uuid7" else [None] * items
    raw = [
        encode_envelope(new_envelope(event_type="STAMP_CREATED", correlation_id=correlations[i], payload=StampCreated(
            stamp_id=uuid.uuid4(), workflow_id=uuid.uuid4(), file_hash="0" * 64, namespace=f"bench-ns-{i % 5}",
            content_type="text/plain", size_bytes=1024 + i % 7, key_id="k",
        )))
        for i in range(items)
    ]  # fmt: skip
    keep = contract.aggregation.recent_workflow_ids
    probe = NamespaceReducer(contract)
    memory_rate = 0.0
    for _ in range(3):  # the best of three: the machine is shared
        began = time.perf_counter()
        decoded = [probe.decode(value) for value in raw]
        aggregate((event[1] for event in decoded if event is not None), keep)
        memory_rate = max(memory_rate, items / (time.perf_counter() - began))
    database = Database(settings.database)
    results = []
    try:
        for batch_size in (contract.aggregation.batch.size, 1000, 5000):
            # A fresh consumer name per run, so no event counts as already processed.
            fresh_input = msgspec.structs.replace(contract.aggregation.input, consumer=f"bench.{uuid.uuid4().hex[:8]}")
            aggregation = msgspec.structs.replace(contract.aggregation, input=fresh_input)
            reducer = NamespaceReducer(msgspec.structs.replace(contract, aggregation=aggregation))
            # The consumer's pipeline: a batch is decoded while the previous one is written.
            inflight = InFlight(lambda batch, r=reducer: persist_with_retry(r, database, batch, STAMPS_TOPIC))
            server_began, client_began, began = postgres() if postgres else 0.0, _cpu(), time.perf_counter()
            for start in range(0, items, batch_size):
                batch = reducer.new_batch()
                for value in raw[start : start + batch_size]:
                    if (event := reducer.decode(value)) is not None:
                        batch.add(event)
                await inflight.wait()
                await inflight.start(batch)
            await inflight.wait()
            elapsed, per_1k = time.perf_counter() - began, 1e6 / items  # seconds -> ms per 1,000 events
            server = (postgres() - server_began) * per_1k if postgres else None
            results.append(
                ReducerRun(batch_size, items / elapsed, memory_rate, (_cpu() - client_began) * per_1k, server)
            )
    finally:
        await database.dispose()
    return results
