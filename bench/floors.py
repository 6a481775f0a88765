"""Where issue 13's throughput targets sit against this machine: the CPU of each write, process by process.

For ``/hash``, ``/stamp``, ``POST /hooks`` (32 connections) and ``/hooks/batch`` (4 connections, 1,000 events
each), with one and with two app workers: wrk loads the app, then the app works off its backlog (events relayed,
hooks applied, stamps reduced); the CPU every process spent from the start of the load to the end of the
backlog (app workers, PostgreSQL, the Kafka broker, Redis, wrk) is divided by the writes. With the machine's two
cores that gives a ceiling, ``2 / CPU per write``, that no tuning of the app's scheduling can pass, and the share
of both cores the load kept busy (a one-worker run that already keeps both cores busy cannot scale by 1.6 with a
second worker).

Beside them, the same work with nothing of ours, in the same run:

* **bare HTTP**: a bare Litestar endpoint (``bench._bare``) under uvicorn, 1 KiB POSTs from wrk: server + wrk CPU
  per request;
* **raw Kafka per event**: an ``AIOKafkaProducer`` configured as the relay's (acks=all, linger 2 ms, 1 MiB
  batches) sends envelopes of the outbox's size, and an ``AIOKafkaConsumer`` reads them back: client + broker CPU
  per event;
* **pgbench**: PostgreSQL's plain ``INSERT`` of a 1 KiB row + ``COMMIT``, 32 clients: server + pgbench CPU per
  commit.

The "floor" of a write is the bare HTTP request plus raw Kafka for each of its events (measured: outbox rows per
write) plus this design's PostgreSQL work (measured in the app run: the rows the seeds require, i.e. the run
record, the outbox and the event log): what it would cost if every line of our Python cost nothing.

Run: ``.venv/bin/python -m bench.floors [--seconds 8]`` (needs ``wrk``). On a quiet machine only: the CPU of
other processes is not counted, but they slow what is.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import resource
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass

import psutil
from sqlalchemy import make_url

from bench._bodies import BARE_BODY, BATCH_BODY, HASH_BODY, HOOK_BODY, STAMP_BODY
from bench._tools import drain_backlog, migrated_stack, pgbench, require_wrk, serve_app, serve_bare, wrk
from omninode_bridge.embedded import EmbeddedStack

KEY = "onb_bench_key_0123456789abcdef0123456789"
AUTH = {"x-api-key": KEY, "content-type": "application/json"}
RAW = {"x-api-key": KEY, "content-type": "application/octet-stream"}
CORES = psutil.cpu_count() or 2
KAFKA_EVENTS = 20_000
#: The size of a stamp's outbox row as the relay sends it (measured: envelope ~460 B, key 36, headers ~110).
ENVELOPE = b"x" * 460
HEADERS = [("content-type", b"application/json"), ("event_type", b"STAMP_CREATED"), ("schema", b"onex.v1")]


def _stack_groups(stack: EmbeddedStack) -> dict[int, str]:
    """The pids of the stack's servers (PostgreSQL with its backends), by group. A server's own pid comes first: its
    CPU counts its exited children (PostgreSQL's closed connections) too."""
    groups: dict[int, str] = {}
    for name, server in (("postgres", stack.postgres), ("redis", stack.redis), ("broker", stack.kafka)):
        if server is not None and server.process is not None:
            with contextlib.suppress(psutil.Error):
                root = psutil.Process(server.process.pid)
                for process in (root, *root.children(recursive=True)):
                    groups[process.pid] = name
    return groups


def _cpu_by_group(stack: EmbeddedStack, app: set[int]) -> Counter[str]:
    """CPU seconds so far of the stack's servers and the app, by group; wrk and pgbench (waited children) as
    'client'. Other processes of the machine are not counted."""
    groups = {**_stack_groups(stack), **dict.fromkeys(app, "app")}
    total: Counter[str] = Counter()
    for pid, group in groups.items():
        with contextlib.suppress(psutil.Error):
            times = psutil.Process(pid).cpu_times()
            total[group] += times.user + times.system + times.children_user + times.children_system  # type: ignore[assignment]
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    total["client"] = children.ru_utime + children.ru_stime  # type: ignore[assignment]
    return total


def _busy() -> float:
    """Busy CPU seconds of the whole machine so far (all cores)."""
    times = psutil.cpu_times()
    return float(sum(times) - times.idle - getattr(times, "iowait", 0.0))


@dataclass
class Window:
    """What one measured window cost."""

    units: int
    seconds: float
    cpu: Counter[str]

    @property
    def per_unit_us(self) -> float:
        return 1e6 * sum(self.cpu.values()) / self.units

    def split(self) -> str:
        parts = [f"{g} {1e6 * s / self.units:,.0f}" for g, s in self.cpu.most_common() if s > 0]
        return ", ".join(parts)


@contextlib.contextmanager
def window(stack: EmbeddedStack, app: set[int], result: list[Window], units: list[int]) -> Iterator[None]:
    """Measure the CPU of the stack's processes over the block; the block fills ``units``."""
    before, began = _cpu_by_group(stack, app), time.monotonic()
    yield
    after, took = _cpu_by_group(stack, app), time.monotonic() - began
    result.append(Window(sum(units), took, after - before))


async def _raw_kafka(bootstrap: str, broker: psutil.Process) -> tuple[float, float]:
    """CPU per event (us) of the raw aiokafka producer and consumer, each with the broker's share."""
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    topic = f"floors-{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1)])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=False, linger_ms=2,
                                max_batch_size=1024 * 1024)  # fmt: skip
    await producer.start()
    try:
        await producer.send_and_wait(topic, ENVELOPE, key=b"warm-up", headers=HEADERS)
        cpu0, broker0 = time.process_time(), sum(broker.cpu_times()[:2])
        for start in range(0, KAFKA_EVENTS, 500):
            futures = [await producer.send(topic, ENVELOPE, key=str(uuid.uuid4()).encode(), headers=HEADERS)
                       for _ in range(start, min(start + 500, KAFKA_EVENTS))]  # fmt: skip
            await asyncio.gather(*futures)
        produce = (time.process_time() - cpu0 + sum(broker.cpu_times()[:2]) - broker0) / KAFKA_EVENTS
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=f"{topic}-g", enable_auto_commit=False,
                                auto_offset_reset="earliest", max_poll_records=1000)  # fmt: skip
    await consumer.start()
    try:
        cpu0, broker0, seen = time.process_time(), sum(broker.cpu_times()[:2]), 0
        while seen < KAFKA_EVENTS + 1:
            batches = await consumer.getmany(timeout_ms=1000)
            for records in batches.values():
                seen += sum(1 for r in records if r.value is not None and r.key is not None)
            await consumer.commit()
        consume = (time.process_time() - cpu0 + sum(broker.cpu_times()[:2]) - broker0) / seen
    finally:
        await consumer.stop()
    return 1e6 * produce, 1e6 * consume


async def _outbox_rows(database_url: str) -> int:
    import asyncpg

    url = make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)
    connection = await asyncpg.connect(url)
    try:
        return int(await connection.fetchval("SELECT coalesce(max(id), 0) FROM event_outbox"))
    finally:
        await connection.close()


def run(stack: EmbeddedStack, seconds: float) -> None:
    """Measure and print both tables."""
    urls = stack.urls
    if stack.kafka is None or stack.kafka.process is None:
        sys.exit("bench.floors needs the embedded Kafka broker")
    broker = psutil.Process(stack.kafka.process.pid)
    print("floors: bare HTTP, raw Kafka, pgbench", flush=True)
    bare_windows: list[Window] = []
    with serve_bare() as (bare, bare_server):
        wrk(bare + "/bare", BARE_BODY, {"content-type": "application/octet-stream"}, connections=32, seconds=2)
        units: list[int] = []
        with window(stack, {bare_server.pid}, bare_windows, units):
            load = wrk(bare + "/bare", BARE_BODY, {"content-type": "application/octet-stream"}, connections=32,
                       seconds=seconds)  # fmt: skip
            units.append(load.requests)
    bare_us = bare_windows[0].per_unit_us
    produce_us, consume_us = asyncio.run(_raw_kafka(urls["kafka"], broker))
    kafka_us = produce_us + consume_us
    pg_windows: list[Window] = []
    units = []
    with window(stack, set(), pg_windows, units):
        tps = pgbench(urls["database_url"], clients=32, seconds=seconds)
        units.append(round(tps * seconds))
    commit_us = pg_windows[0].per_unit_us
    print(f"  bare HTTP {bare_us:,.0f} us/request ({bare_windows[0].split()}); raw Kafka {produce_us:,.0f} us to "
          f"produce + {consume_us:,.0f} us to consume an event; pgbench {tps:,.0f} tps, {commit_us:,.0f} us/commit "
          f"({pg_windows[0].split()})", flush=True)  # fmt: skip

    env = {
        "OMNINODE_ENV": "test", "OMNINODE_DATABASE_URL": urls["database_url"], "OMNINODE_REDIS_URL": urls["redis_url"],
        "OMNINODE_KAFKA_BOOTSTRAP_SERVERS": urls["kafka"], "OMNINODE_API_KEYS": f"bench:{KEY}:admin",
        "OMNINODE_RATE_LIMIT_REQUESTS": "1000000000", "OMNINODE_LOG_LEVEL": "WARNING",
    }  # fmt: skip
    figures = [
        ("/hash", HASH_BODY, RAW, 32, 1, ">= 0.6 of bare"),
        ("/stamp", STAMP_BODY, AUTH, 32, 1, ">= 1,000/s"),
        ("/hooks", HOOK_BODY, AUTH, 32, 1, ">= 2,000/s"),
        ("/hooks/batch", BATCH_BODY, AUTH, 4, 1000, ">= 50,000/s"),
    ]
    lines: list[str] = []
    for workers in (1, 2):
        with serve_app(env, workers) as (app, server):
            pids = {p.pid for p in psutil.Process(server.pid).children() if "spawn_main" in " ".join(p.cmdline())}
            pids = pids or {server.pid}
            wrk(app + "/hash", HASH_BODY, RAW, connections=32, seconds=8)  # warm-up: the consumer groups join
            for path, body, headers, connections, per_request, target in figures:
                drain_backlog(urls["database_url"])
                run_id = uuid.uuid4().hex[:8]
                rows0 = asyncio.run(_outbox_rows(urls["database_url"]))
                measured: list[Window] = []
                units = []
                with window(stack, pids, measured, units):
                    busy0 = _busy()
                    load = wrk(app + path, body.format(run=run_id) if "{run}" in body else body, headers,
                               connections=connections, seconds=seconds)  # fmt: skip
                    units.append(load.requests * per_request)
                    busy_cores = (_busy() - busy0) / load.seconds
                    drain_backlog(urls["database_url"])
                w = measured[0]
                events = (asyncio.run(_outbox_rows(urls["database_url"])) - rows0) / w.units
                rate = load.requests * per_request / load.seconds
                total_us = w.per_unit_us
                pg_us = 1e6 * w.cpu["postgres"] / w.units
                floor_us = bare_us / per_request + events * kafka_us + pg_us
                lines.append(
                    f"| {path} | {workers} | {rate:,.0f}/s | {total_us:,.0f} ({w.split()}) | {events:.1f} | "
                    f"{CORES * 1e6 / total_us:,.0f}/s | {floor_us:,.0f} | {CORES * 1e6 / floor_us:,.0f}/s | "
                    f"{busy_cores:.2f} | {target} |"
                )  # fmt: skip
                print("  " + lines[-1], flush=True)
    print()
    print(f"Floors, same run: bare HTTP {bare_us:,.0f} us per request; raw Kafka {kafka_us:,.0f} us per event "
          f"(produce {produce_us:,.0f} + consume {consume_us:,.0f}, broker included); pgbench {commit_us:,.0f} us "
          f"per plain commit ({tps:,.0f} tps).")  # fmt: skip
    print()
    print("| write | workers | rate | CPU per write, us (by process) | events per write | ceiling at this cost | "
          "floor, us (bare HTTP + raw Kafka per event + this design's PostgreSQL) | ceiling at the floor | "
          "cores busy | target |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|---|")
    for line in lines:
        print(line)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=8.0, help="Seconds per load run (default 8).")
    args = parser.parse_args()
    require_wrk()
    with migrated_stack("bench-floors-") as stack:
        run(stack, args.seconds)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
