"""PostgreSQL outage: the breaker opens, requests fail fast with 503, and everything recovers."""

from __future__ import annotations

import time

from omninode_bridge.embedded import EmbeddedStack
from tests.integration.conftest import ADMIN_KEY, app_client, make_settings, wait_until


async def test_database_outage_fails_fast_and_recovers(own_stack: EmbeddedStack) -> None:
    # A stack of its own, as the broker-outage tests have: stopping the worker's shared PostgreSQL cut the pools of
    # every app the worker runs (the session's app, its consumers and relay) and opened their breakers too.
    stack = own_stack
    assert stack.postgres is not None
    settings = make_settings(
        stack,
        database={"breaker_failure_threshold": 5, "breaker_reset_seconds": 2.0, "breaker_half_open_calls": 3},
    )
    headers = {"X-API-Key": ADMIN_KEY}
    hook = {"source": "claude-code", "event_type": "pre_tool_use", "session_id": "outage"}
    async with app_client(settings) as client:
        assert (await client.get("/admin/api-keys", headers=headers)).status_code == 200  # key now cached
        # A one-statement write (``UnitOfWork.commit_one``, on the pooled connection's driver) leaves its
        # connection in the pool for the outage to cut.
        assert (await client.post("/hooks", json=hook, headers=headers)).status_code == 202
        stack.postgres.stop()
        try:
            assert (await client.post("/hooks", json=hook, headers=headers)).status_code == 503  # never a 500
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

        async def writes() -> bool:
            return (await client.post("/hooks", json=hook, headers=headers)).status_code == 202

        await wait_until(writes, timeout=10, interval=0.1, message="one-statement writes did not recover")
        assert (await client.post("/hooks", json=hook, headers=headers)).status_code == 202
