"""Two worker processes: both serve, and the background work is done once (no double send or count)."""

from __future__ import annotations

import asyncio
import re
import shutil
import signal
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import msgspec
import psutil
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from omninode_bridge.core.events.catalog import default_contracts_dir
from omninode_bridge.embedded import EmbeddedStack, free_port
from tests.integration.conftest import ADMIN_KEY, start_serve, wait_until
from tests.support.kafka_helpers import read_topic

STAMPS_TOPIC = "omninode_bridge_stamps_v1"
STAMPS = 120


def _patient_contracts(tmp_path: Path) -> Path:
    """The contracts with every step timeout at 30 s: this checks counts, not speed, on a loaded machine."""
    target = tmp_path / "contracts"
    shutil.copytree(default_contracts_dir(), target)
    for path in target.rglob("*.yaml"):
        path.write_text(re.sub(r"(\btimeout_ms:\s*)\d+", r"\g<1>30000", path.read_text()))
    return target


def _workers(supervisor: subprocess.Popen[bytes]) -> list[psutil.Process]:
    children = psutil.Process(supervisor.pid).children()
    return [child for child in children if "spawn_main" in " ".join(child.cmdline())]


class Connection:
    """One keep-alive HTTP/1.1 connection, so that we know which worker answers it."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.local_port: int = writer.get_extra_info("sockname")[1]

    async def request(self, method: str, path: str, body: bytes = b"") -> tuple[int, bytes]:
        head = (
            f"{method} {path} HTTP/1.1\r\nhost: 127.0.0.1\r\nx-api-key: {ADMIN_KEY}\r\n"
            f"content-type: application/json\r\ncontent-length: {len(body)}\r\n\r\n"
        )
        self.writer.write(head.encode() + body)
        response = await self.reader.readuntil(b"\r\n\r\n")
        length = next(
            (int(line[15:]) for line in response.split(b"\r\n") if line[:15].lower() == b"content-length:"), 0
        )
        return int(response[9:12]), await self.reader.readexactly(length)


def _owner(workers: list[psutil.Process], connection: Connection, port: int) -> int | None:
    for worker in workers:
        for conn in worker.net_connections(kind="tcp"):
            if conn.laddr and conn.laddr.port == port and conn.raddr and conn.raddr.port == connection.local_port:
                return worker.pid
    return None


async def _connections_on_every_worker(port: int, workers: list[psutil.Process]) -> dict[int, list[Connection]]:
    """Open connections until each worker holds some (the kernel hands accepts to either process)."""
    owned: dict[int, list[Connection]] = {worker.pid: [] for worker in workers}
    for _ in range(400):
        connection = Connection(*await asyncio.open_connection("127.0.0.1", port))
        status, _ = await connection.request("GET", "/health/live")
        assert status == 200
        pid = _owner(workers, connection, port)
        if pid is not None:
            owned[pid].append(connection)
        if all(len(conns) >= 2 for conns in owned.values()):
            return owned
    raise AssertionError(f"connections did not reach every worker: { {p: len(c) for p, c in owned.items()} }")


async def _whole_topic(stack: EmbeddedStack) -> list[Any]:
    """Every record of the stamps topic up to its current end offsets."""
    consumer = AIOKafkaConsumer(bootstrap_servers=stack.urls["kafka"], enable_auto_commit=False, group_id=None)
    await consumer.start()
    try:
        partitions = [TopicPartition(STAMPS_TOPIC, p) for p in consumer.partitions_for_topic(STAMPS_TOPIC) or []]
        if not partitions:
            await consumer._client.force_metadata_update()
            partitions = [TopicPartition(STAMPS_TOPIC, p) for p in consumer.partitions_for_topic(STAMPS_TOPIC) or []]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        records: list[Any] = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and any([await consumer.position(tp) < ends[tp] for tp in partitions]):
            for batch in (await consumer.getmany(timeout_ms=500)).values():
                records.extend(batch)
        return records
    finally:
        await consumer.stop()


@pytest.mark.slow
async def test_two_workers_serve_and_do_background_work_once(own_stack: EmbeddedStack, tmp_path: Path) -> None:
    port = free_port()
    supervisor = start_serve(
        own_stack, port, quiet=False, OMNINODE_WORKERS="2", OMNINODE_CONTRACTS_DIR=str(_patient_contracts(tmp_path))
    )
    try:
        workers = _workers(supervisor)
        assert len(workers) == 2, [w.cmdline() for w in workers]
        owned = await _connections_on_every_worker(port, workers)
        for conns in owned.values():  # each worker's Kafka clients have joined and settled

            async def healthy(conn: Connection = conns[0]) -> bool:
                status, body = await conn.request("GET", "/health")
                return status == 200 and msgspec.json.decode(body)["status"] == "healthy"

            await wait_until(healthy, timeout=60, interval=0.5, message="a worker did not become healthy")
        namespace = f"workers-{uuid.uuid4().hex[:8]}"
        connections = [conn for conns in owned.values() for conn in conns]
        served: dict[int, int] = dict.fromkeys(owned, 0)

        async def stamp_through(pid: int, connection: Connection, start: int) -> None:
            for i in range(start, STAMPS, len(connections)):
                body = msgspec.json.encode({"content": f"worker test {i}", "namespace": namespace})
                status, answer = await connection.request("POST", "/stamp", body)
                assert status == 201, answer
                served[pid] += 1

        await asyncio.gather(
            *(
                stamp_through(pid, conn, index)
                for index, (pid, conn) in enumerate((p, c) for p, conns in owned.items() for c in conns)
            )
        )
        assert sum(served.values()) == STAMPS
        assert all(count > 0 for count in served.values()), served  # both workers served stamps

        # Every worker runs a relay and a reducer: each event reaches Kafka once, and is counted once.
        def ours(record: Any) -> bool:
            envelope = msgspec.json.decode(record.value)
            return envelope.get("event_type") == "STAMP_CREATED" and envelope["payload"].get("namespace") == namespace

        records = await read_topic(own_stack.urls["kafka"], STAMPS_TOPIC, expect=STAMPS, timeout=60, match=ours)
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}", headers={"X-API-Key": ADMIN_KEY}, timeout=10
        ) as http:

            async def counted() -> bool:
                response = await http.get(f"/namespaces/{namespace}/stats")
                return response.status_code == 200 and response.json()["total_stamps"] >= STAMPS

            await wait_until(counted, timeout=60, interval=0.5, message="the reducer did not count the stamps")
            await asyncio.sleep(3)  # time for a second send or a second count, if either could happen
            stats = (await http.get(f"/namespaces/{namespace}/stats")).json()
        ids = [
            msgspec.json.decode(record.value)["event_id"] for record in await _whole_topic(own_stack) if ours(record)
        ]
        assert len(records) == STAMPS
        assert len(ids) == len(set(ids)) == STAMPS  # no event sent twice
        assert stats["total_stamps"] == STAMPS  # no double reduction
        for conns in owned.values():
            for conn in conns:
                conn.writer.close()
    finally:
        supervisor.send_signal(signal.SIGTERM)
        supervisor.wait(timeout=60)
