"""A SIGKILL with events still in the outbox: after a restart they are sent."""

from __future__ import annotations

import signal
import uuid

import httpx
import pytest

from omninode_bridge.embedded import EmbeddedStack, free_port
from tests.integration.conftest import ADMIN_KEY, start_serve
from tests.support.kafka_helpers import read_topic, verify_envelope

STATUS_TOPIC = "omninode_codegen_status_session_v1"


@pytest.mark.slow
async def test_sigkill_with_pending_outbox_rows_then_restart_sends_them(own_stack: EmbeddedStack) -> None:
    assert own_stack.kafka is not None
    port = free_port()
    own_stack.kafka.stop()  # the relay cannot send: rows stay pending
    process = start_serve(own_stack, port)
    session = uuid.uuid4()
    keys: list[str] = []
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
            for step in range(20):
                key = f"crash-{uuid.uuid4()}"
                response = await http.post(
                    f"/codegen/sessions/{session}/status",
                    json={"status": "in_progress", "progress_percent": step, "current_step": "s"},
                    headers={"X-API-Key": ADMIN_KEY, "X-Correlation-ID": key},
                )
                assert response.status_code == 202
                keys.append(key)
    finally:
        process.send_signal(signal.SIGKILL)  # no shutdown hooks, no flush
        process.wait()
    own_stack.kafka.start()
    restarted = start_serve(own_stack, port)
    try:
        records = await read_topic(
            own_stack.urls["kafka"], STATUS_TOPIC, expect=20, timeout=90,
            match=lambda r: r.key is not None and r.key.decode() in keys,
        )  # fmt: skip
    finally:
        restarted.send_signal(signal.SIGTERM)
        restarted.wait(timeout=30)
    sent = {verify_envelope(r.value)["correlation_id"] for r in records}
    assert sent == set(keys)
