"""Outbox relay throughput vs a raw aiokafka producer, on the embedded stack.

The transactional outbox makes publishing atomic with the database write, but every event then takes a
detour: it is written to ``outbox`` and the relay later reads it back, sends it, writes ``event_log`` and
marks the row sent. This benchmark measures what that detour costs by sending the same N envelopes
(same topic, key, value and headers) twice in one run:

* **raw** - an ``AIOKafkaProducer`` configured like the relay's (acks=all, linger 2 ms, 1 MiB batches)
  sends all envelopes with ``send``, awaiting acknowledgements in chunks of 500 (chunks of 1000 and
  5000 measured the same within noise; sending everything before awaiting was slower). Timed from the
  first send to the last acknowledgement, after the producer has started and fetched metadata;
* **relay** - the envelopes are staged in the outbox first (not timed) and the relay's producer is
  started (``OutboxRelay.connect``, printed separately: a running app does it once, at start-up);
  then ``OutboxRelay.relay_once`` is called until the outbox is drained. Timed from the rows being
  pending to every row being marked sent and logged, committed. Afterwards the benchmark checks that no
  row is left pending and that ``event_logs`` holds one ``published`` row per event.

It prints events/s for both and the ratio relay/raw for several interleaved pairs (raw, relay, raw,
relay, ...: on a 2-core machine shared by PostgreSQL, the broker and the client one run is noisy), then
the median ratio. The target is at least 0.5, i.e. the outbox should cost no more than half of the raw
producer's throughput.

Run: ``.venv/bin/python -m bench.outbox_relay [--events N] [--repeat K]``
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from pathlib import Path

from aiokafka import AIOKafkaProducer
from sqlalchemy import text

from bench._tools import discard
from omninode_bridge.core.db import Database
from omninode_bridge.core.events import (
    EventPublisher,
    OnexEnvelopeV1,
    OutboxRelay,
    TopicCatalog,
    encode_envelope,
    ensure_topics,
    load_catalog,
    new_envelope,
)
from omninode_bridge.core.events.envelope import kafka_headers
from omninode_bridge.embedded import EmbeddedStack
from omninode_bridge.migrations import upgrade
from omninode_bridge.settings import load_settings

TOPIC = "omninode_bridge_metrics_v1"
SEND_CHUNK = 500
INSERT_CHUNK = 1000
TARGET_RATIO = 0.5


def build_envelopes(count: int) -> list[OnexEnvelopeV1]:
    """``count`` envelopes with ~200-byte payloads spread over 100 keys."""
    return [
        new_envelope(event_type="Bench", payload={"i": i, "pad": "x" * 200}, correlation_id=f"k{i % 100}")
        for i in range(count)
    ]


async def bench_raw(kafka: str, envelopes: list[OnexEnvelopeV1]) -> float:
    """Seconds a plain producer needs to send and get acknowledgements for every envelope."""
    records = [(e.correlation_id.encode(), encode_envelope(e), kafka_headers(e)) for e in envelopes]
    producer = AIOKafkaProducer(bootstrap_servers=kafka, acks="all", linger_ms=2, max_batch_size=1024 * 1024)
    await producer.start()
    try:
        await producer.client.force_metadata_update()
        start = time.perf_counter()
        for offset in range(0, len(records), SEND_CHUNK):
            futures = [
                await producer.send(TOPIC, value=value, key=key, headers=headers)
                for key, value, headers in records[offset : offset + SEND_CHUNK]
            ]
            await asyncio.gather(*futures)
        return time.perf_counter() - start
    finally:
        await producer.stop()


async def bench_relay(
    urls: dict[str, str], catalog: TopicCatalog, envelopes: list[OnexEnvelopeV1]
) -> tuple[float, float]:
    """Seconds the outbox relay needs to drain ``envelopes`` (staged beforehand), and its start-up."""
    settings = load_settings({}, env_file=None).with_services(
        database_url=urls["database_url"], redis_url=urls["redis_url"], kafka=urls["kafka"]
    )
    database = Database(settings.database)
    try:
        publisher = EventPublisher(catalog, database)
        async with database.unit_of_work() as uow:  # every pair starts from empty tables
            await uow.session.execute(text("TRUNCATE event_outbox, event_outbox_pending, event_logs"))
            await uow.commit()
        for offset in range(0, len(envelopes), INSERT_CHUNK):
            async with database.unit_of_work() as uow:
                await publisher.publish_many(uow, TOPIC, envelopes[offset : offset + INSERT_CHUNK])
                await uow.commit()
        relay = OutboxRelay(database, catalog, urls["kafka"])
        sent = 0
        try:
            start = time.perf_counter()
            await relay.connect()
            startup = time.perf_counter() - start
            start = time.perf_counter()
            while (n := await relay.relay_once()) > 0:
                sent += n
            elapsed = time.perf_counter() - start
        finally:
            await relay.close()
        if sent != len(envelopes):
            raise RuntimeError(f"relay sent {sent} events, expected {len(envelopes)}")
        async with database.unit_of_work() as uow:
            pending = await uow.session.scalar(text("SELECT count(*) FROM event_outbox_pending"))
            logged = await uow.session.scalar(
                text("SELECT count(*) FROM event_logs WHERE direction = 'published' AND topic = :topic"),
                {"topic": TOPIC},
            )
        if pending or logged != len(envelopes):
            raise RuntimeError(f"after the relay: {pending} rows pending, {logged} published events logged")
        return elapsed, startup
    finally:
        await database.dispose()


async def run(urls: dict[str, str], count: int, repeat: int) -> None:
    catalog = load_catalog()
    catalog.require(TOPIC)
    await ensure_topics(urls["kafka"], catalog)
    print(f"cpus: {os.cpu_count()}; outbox batch_size {catalog.outbox.batch_size}; {repeat} interleaved pairs")
    print(f"{'pair':<5} {'raw ev/s':>10} {'relay ev/s':>11} {'ratio':>6} {'relay start-up s':>17}")
    ratios: list[float] = []
    for pair in range(1, repeat + 1):
        # Fresh envelopes each pair: event ids are unique in the outbox.
        envelopes = build_envelopes(count)
        raw_s = await bench_raw(urls["kafka"], envelopes)
        relay_s, startup_s = await bench_relay(urls, catalog, envelopes)
        raw_rate, relay_rate = count / raw_s, count / relay_s
        ratios.append(relay_rate / raw_rate)
        print(f"{pair:<5} {raw_rate:>10.0f} {relay_rate:>11.0f} {ratios[-1]:>6.2f} {startup_s:>17.3f}")
    print(
        f"ratio relay/raw: median {statistics.median(ratios):.2f}, min {min(ratios):.2f}, max {max(ratios):.2f}"
        f" (target >= {TARGET_RATIO:.2f}); start-up (topics + producer) happens once per process, not timed"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--events", type=int, default=20_000, help="envelopes to send (default 20000)")
    parser.add_argument(
        "--repeat", type=int, default=5, help="raw/relay pairs, interleaved: the 2-core machine is noisy (default 5)"
    )
    args = parser.parse_args()
    stack = EmbeddedStack(Path(tempfile.mkdtemp(prefix="bench-outbox-")))
    stack.start()
    try:
        upgrade(stack.postgres.url)
        asyncio.run(run(stack.urls, args.events, args.repeat))
    finally:
        discard(stack)


if __name__ == "__main__":
    main()
