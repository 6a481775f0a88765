"""What each event of a stamp costs (issue 13, item 4): the 11 events of the default stamping contract.

A stamp is made through the app (``serve``, one worker) with a known correlation id; its outbox rows are the
events the default contract publishes. For each: the envelope's size, the app CPU to build it (payload to
canonical JSON, BLAKE3 payload hash, id, timestamp) and encode it with its headers, measured in-process; and
the database time one more row adds to the stamp's one statement (the outbox ``INSERT ... FROM unnest``),
from the slope between writing 1 and all 11 rows, one connection, each statement its own transaction (the
first row pays the commit's flush, which no event adds to: the stamp's row pays it anyway).

Run: ``.venv/bin/python -m bench.stamp_events [--rounds 400]``.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
import uuid
from pathlib import Path

import asyncpg
import httpx

from bench._tools import discard, serve_app
from omninode_bridge.core.events import decode_envelope, encode_envelope, new_envelope, outbox_rows_sql
from omninode_bridge.embedded import EmbeddedStack
from omninode_bridge.migrations import upgrade

KEY = "onb_bench_key_0123456789abcdef0123456789"
_ROWS_SQL = outbox_rows_sql("true")


def _asyncpg_sql(sql: str) -> str:
    """The named parameters of :func:`outbox_rows_sql` as asyncpg's ``$n``."""
    names = ["outbox_event_ids", "outbox_topic", "outbox_keys", "outbox_event_types", "outbox_envelopes",
             "outbox_headers"]  # fmt: skip
    for i, name in enumerate(names, 1):
        sql = sql.replace(f":{name}", f"${i}")
    return sql


def stamp_events(stack: EmbeddedStack) -> list[tuple[str, bytes]]:
    """(event type, stored envelope) of one stamp's outbox rows, in order."""
    urls = stack.urls
    env = {
        "OMNINODE_ENV": "test", "OMNINODE_DATABASE_URL": urls["database_url"], "OMNINODE_REDIS_URL": urls["redis_url"],
        "OMNINODE_KAFKA_BOOTSTRAP_SERVERS": urls["kafka"], "OMNINODE_API_KEYS": f"bench:{KEY}:admin",
        "OMNINODE_LOG_LEVEL": "WARNING",
    }  # fmt: skip
    correlation = f"events-{uuid.uuid4().hex}"
    with serve_app(env, 1) as (app, _server):
        response = httpx.post(app + "/stamp", json={"content": "x" * 1000 + correlation, "namespace": "bench-events"},
                              headers={"x-api-key": KEY, "x-correlation-id": correlation}, timeout=30)  # fmt: skip
        response.raise_for_status()

    async def read() -> list[tuple[str, bytes]]:
        connection = await asyncpg.connect(urls["database_url"].replace("+asyncpg", ""))
        try:
            rows = await connection.fetch("SELECT event_type, envelope FROM event_outbox WHERE key = $1 ORDER BY id",
                                          correlation)  # fmt: skip
        finally:
            await connection.close()
        return [(r["event_type"], bytes(r["envelope"])) for r in rows]

    return asyncio.run(read())


def build_cost(event_type: str, payload: dict[str, object], rounds: int = 20_000) -> float:
    """Microseconds to build, encode and give headers to one envelope of this type and payload."""
    started = time.perf_counter()
    for _ in range(rounds):
        envelope = new_envelope(event_type=event_type, payload=payload, correlation_id="c", source="omninode-bridge")
        encode_envelope(envelope)
    return (time.perf_counter() - started) / rounds * 1e6


async def db_cost(database_url: str, envelopes: list[bytes], types: list[str], rounds: int) -> dict[int, float]:
    """Median milliseconds of one autocommitted outbox statement with 0, 1, ... all of ``envelopes``."""
    connection = await asyncpg.connect(database_url.replace("+asyncpg", ""))
    sql = _asyncpg_sql(_ROWS_SQL)
    timings: dict[int, list[float]] = {n: [] for n in (0, 1, len(envelopes))}
    try:
        for _ in range(rounds):
            for n in timings:
                args = ([uuid.uuid4() for _ in range(n)], "bench_events", ["k"] * n, types[:n], envelopes[:n],
                        ['{"event_type": "x"}'] * n)  # fmt: skip
                started = time.perf_counter()
                await connection.execute(sql, *args)
                timings[n].append((time.perf_counter() - started) * 1000)
        await connection.execute("DELETE FROM event_outbox WHERE topic = 'bench_events'")
    finally:
        await connection.close()
    return {n: statistics.median(values) for n, values in timings.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=400)
    args = parser.parse_args()
    stack = EmbeddedStack(Path(tempfile.mkdtemp(prefix="bench-events-")))
    stack.start()
    try:
        upgrade(stack.urls["database_url"])
        events = stamp_events(stack)
        # The relay's trigger queues every row; a topic of our own keeps these rows out of its way.
        costs = asyncio.run(db_cost(stack.urls["database_url"], [e for _, e in events], [t for t, _ in events],
                                    args.rounds))  # fmt: skip
    finally:
        discard(stack)
    n = len(events)
    # 0 rows write nothing (no commit record to flush); the first row pays the commit, the others their rows.
    per_row = (costs[n] - costs[1]) / max(n - 1, 1)
    print(f"\nOne stamp under the default contract publishes {n} events.")
    print(f"Outbox statement, 1 connection, median: 0 rows {costs[0]:.3f} ms, 1 row {costs[1]:.3f} ms, "
          f"{n} rows {costs[n]:.3f} ms: {per_row * 1000:.0f} us per row after the first.\n")  # fmt: skip
    print("| # | event | envelope bytes | build + encode, app CPU us |")
    print("|---|---|---|---|")
    total_cpu = 0.0
    for i, (event_type, raw) in enumerate(events, 1):
        payload = decode_envelope(raw).payload
        cpu = build_cost(event_type, payload)
        total_cpu += cpu
        print(f"| {i} | {event_type} | {len(raw)} | {cpu:.1f} |")
    print(f"| | all {n} | {sum(len(e) for _, e in events)} | {total_cpu:.1f} |")


if __name__ == "__main__":
    main()
