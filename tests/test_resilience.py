"""PostgreSQL outage: the breaker opens, requests fail fast with 503, and everything recovers."""

from __future__ import annotations

import time
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy.exc import DisconnectionError

from omninode_bridge.core import db as db_module
from omninode_bridge.embedded import EmbeddedStack
from omninode_bridge.settings import Settings
from tests.conftest import ADMIN_KEY, app_client, make_settings, wait_until


async def test_database_outage_fails_fast_and_recovers(stack: EmbeddedStack) -> None:
    assert stack.postgres is not None
    settings = make_settings(
        stack,
        database={"breaker_failure_threshold": 5, "breaker_reset_seconds": 2.0, "breaker_half_open_calls": 3},
    )
    headers = {"X-API-Key": ADMIN_KEY}
    async with app_client(settings) as client:
        assert (await client.get("/admin/api-keys", headers=headers)).status_code == 200  # key now cached
        stack.postgres.stop()
        try:
            statuses = [(await client.get("/admin/api-keys", headers=headers)).status_code for _ in range(5)]
            assert statuses == [503] * 5
            started = time.perf_counter()
            response = await client.get("/admin/api-keys", headers=headers)
            elapsed = time.perf_counter() - started
            assert response.status_code == 503
            assert elapsed < 1.0
            assert int(response.headers["retry-after"]) >= 1
            assert response.json()["type"] == "https://omninode.dev/problems/database-unavailable"
            health = await client.get("/health")
            assert health.status_code == 503
            assert health.json()["status"] == "unhealthy"
            assert health.json()["components"]["database"]["status"] == "down"
            metrics = (await client.get("/metrics")).text
            assert 'omninode_circuit_breaker_state{dependency="database"} 2.0' in metrics
        finally:
            stack.postgres.start()

        async def recovered() -> bool:
            return (await client.get("/admin/api-keys", headers=headers)).status_code == 200

        await wait_until(recovered, timeout=15, interval=0.2, message="API did not recover after PostgreSQL came back")

        async def healthy() -> bool:
            # The breaker closes after its trial calls succeed; until then /health says "degraded".
            await client.get("/admin/api-keys", headers=headers)
            return (await client.get("/health")).json()["status"] == "healthy"

        await wait_until(healthy, timeout=10, interval=0.1, message="health did not return to healthy")


def test_pool_exhaustion_is_warned_once_a_minute_not_per_checkout(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    warnings: list[dict[str, Any]] = []

    class Recorder:
        def warning(self, event: str, **fields: Any) -> None:
            warnings.append({"event": event, **fields})

    database = db_module.Database(settings.database)  # the engine does not connect until first used
    monkeypatch.setattr(db_module, "log", Recorder())
    usage = iter([(35, 36), (20, 36), (35, 36)] * 100)  # hovering around the threshold under load
    monkeypatch.setattr(database, "pool_usage", lambda: next(usage))
    record = SimpleNamespace(info={})
    for _ in range(300):
        database._on_checkout(None, record)
    assert warnings == [{"event": "database pool nearly exhausted", "in_use": 35, "capacity": 36}]


def test_only_connections_idle_for_a_while_are_pinged_at_checkout(settings: Settings) -> None:
    """No round trip per checkout under load; a stale idle connection is swapped for a fresh one."""
    database = db_module.Database(settings.database)
    pings: list[str] = []

    class Connection:
        def __init__(self, alive: bool) -> None:
            self.alive = alive

        def ping(self) -> None:
            pings.append("ping")
            if not self.alive:
                raise ConnectionResetError("server closed the connection")

    busy = SimpleNamespace(info={db_module._IDLE_SINCE: time.monotonic()})
    database._on_checkout(Connection(alive=False), busy)  # just checked in: trusted, not pinged
    fresh = SimpleNamespace(info={})
    database._on_checkout(Connection(alive=False), fresh)  # just connected: not pinged
    assert pings == []
    idle = SimpleNamespace(info={db_module._IDLE_SINCE: time.monotonic() - db_module._IDLE_PING_SECONDS - 1})
    database._on_checkout(Connection(alive=True), idle)
    assert pings == ["ping"]
    with pytest.raises(DisconnectionError):  # the pool discards it and checks out another
        database._on_checkout(Connection(alive=False), idle)
