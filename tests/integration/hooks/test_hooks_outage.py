"""With Kafka stopped, hooks are still accepted; once it is back they are published and processed, none lost."""

from __future__ import annotations

import uuid

from omninode_bridge.embedded import EmbeddedStack
from tests.integration.conftest import ADMIN_KEY, app_client, make_settings, wait_until

HEADERS = {"X-API-Key": ADMIN_KEY}


async def test_hooks_accepted_while_kafka_is_down_are_processed_after_it_returns(own_stack: EmbeddedStack) -> None:
    stack = own_stack
    assert stack.kafka is not None
    session = f"outage-{uuid.uuid4()}"
    async with app_client(make_settings(stack)) as client:
        stack.kafka.stop()
        try:
            event_ids = []
            for i in range(20):
                response = await client.post(
                    "/hooks",
                    json={"source": "outage-agent", "event_type": "pre_tool_use", "session_id": session,
                          "tool_call_id": f"call-{i}", "tool_name": "Bash", "data": {"i": i}},
                    headers=HEADERS,
                )  # fmt: skip
                assert response.status_code == 202, response.text
                event_ids.append(response.json()["event_id"])
            batch = await client.post(
                "/hooks/batch",
                json={"events": [{"source": "outage-agent", "event_type": "post_tool_use", "session_id": session,
                                  "tool_call_id": f"call-{i}", "data": {"ok": True}} for i in range(20)]},
                headers=HEADERS,
            )  # fmt: skip
            assert batch.status_code == 202, batch.text
            event_ids += [e["event_id"] for e in batch.json()["events"]]
            pending = await client.get("/hooks/events", params={"session_id": session, "limit": 100}, headers=HEADERS)
            assert {e["status"] for e in pending.json()["items"]} == {"accepted"}
        finally:
            stack.kafka.start()  # same port, empty broker: the relay recreates the topics

        async def all_processed() -> bool:
            page = await client.get("/hooks/events", params={"session_id": session, "limit": 100}, headers=HEADERS)
            items = page.json()["items"]
            return len(items) == 40 and all(e["status"] == "processed" for e in items)

        await wait_until(all_processed, timeout=180, interval=0.5, message="hooks accepted during the outage were lost")
        timeline = (await client.get(f"/hooks/sessions/{session}", headers=HEADERS)).json()
        assert timeline["session"]["event_count"] == 40, "an event was applied twice or not at all"
        assert len(timeline["tool_calls"]) == 20
        assert all(c["duration_ms"] is not None for c in timeline["tool_calls"])
        assert {e["event_id"] for e in timeline["events"]} == set(event_ids)
