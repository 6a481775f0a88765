"""The stamping workflow end to end: recorded runs, the OnexTree step, a failed run, start-up checks.

The runner's pure rules (FSM, timeouts, optional steps, retries, events) are in tests/unit/core/test_steps.py.
"""

from __future__ import annotations

import contextlib
import http.server
import json
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from omninode_bridge.app import create_app
from omninode_bridge.embedded import EmbeddedStack
from omninode_bridge.settings import Settings
from tests.integration.conftest import app_client, make_settings
from tests.support.contracts_helper import contracts_copy

STEPS_FILE = "stamping/subcontracts/workflow_steps.yaml"


def _ns() -> str:
    return f"orch-{uuid.uuid4().hex[:8]}"


async def _outbox_event_types(settings: Settings, correlation_id: str) -> list[str]:
    engine = create_async_engine(settings.database.url or "")
    try:
        async with engine.connect() as connection:
            rows = await connection.execute(
                text("SELECT event_type FROM event_outbox WHERE key = :key AND topic = 'omninode_bridge_stamps_v1' "
                     "ORDER BY id"), {"key": correlation_id},
            )  # fmt: skip
            return [row[0] for row in rows]
    finally:
        await engine.dispose()


@contextlib.contextmanager
def _http_server() -> Iterator[str]:
    """A local OnexTree stand-in in its own thread that answers JSON."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("content-length", 0)))
            body = json.dumps({"classification": "source", "confidence": 0.93}).encode()
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_: Any) -> None:
            return

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


async def test_workflow_is_recorded_with_steps_transitions_and_events(
    settings: Settings, client: Any, admin_headers: dict[str, str]
) -> None:
    correlation_id = str(uuid.uuid4())
    response = await client.post("/stamp", json={"content": "recorded\n", "namespace": _ns()},
                                 headers={**admin_headers, "X-Correlation-ID": correlation_id})  # fmt: skip
    assert response.status_code == 201, response.text
    stamp = response.json()
    assert stamp["intelligence"] == "degraded"  # OMNINODE_ONEXTREE_URL is unset here

    execution = (await client.get(f"/orchestrator/workflows/{stamp['workflow_id']}", headers=admin_headers)).json()
    assert execution["state"] == "COMPLETED"
    assert execution["degraded"] is True
    assert [(s["name"], s["status"]) for s in execution["steps"]] == [
        ("validate_input", "completed"), ("onextree_intelligence", "skipped"), ("hash_generation", "completed"),
        ("stamp_creation", "completed"), ("event_publishing", "completed"),
    ]  # fmt: skip
    assert [(t["from_state"], t["to_state"]) for t in execution["transitions"]] == [
        ("PENDING", "PROCESSING"),
        ("PROCESSING", "COMPLETED"),
    ]
    assert execution["steps"][1]["error"] == "onextree_intelligence is not configured"

    events = await _outbox_event_types(settings, correlation_id)
    assert events[0] == "WORKFLOW_STARTED"
    assert events[-1] == "WORKFLOW_COMPLETED"
    assert events.count("STEP_COMPLETED") == 5
    assert events.count("STATE_TRANSITION") == 2
    assert {"HASH_GENERATED", "STAMP_CREATED"} <= set(events)

    again = await client.post("/stamp", json={"content": "recorded\n", "namespace": execution["namespace"]},
                              headers={**admin_headers, "X-Correlation-ID": correlation_id + "-2"})  # fmt: skip
    assert again.status_code == 200
    assert "STAMP_CREATED" not in await _outbox_event_types(settings, correlation_id + "-2")


async def test_onextree_answering_is_used(stack: EmbeddedStack) -> None:
    with _http_server() as url:
        settings = make_settings(stack, stamping={"onextree_url": url})
        async with app_client(settings) as client:
            headers = {"X-API-Key": "onb_test_admin_key_0123456789abcdef"}
            stamp = (
                await client.post("/stamp", json={"content": "smart\n", "namespace": _ns()}, headers=headers)
            ).json()
            assert stamp["intelligence"] == "used"
            execution = (await client.get(f"/orchestrator/workflows/{stamp['workflow_id']}", headers=headers)).json()
            step = execution["steps"][1]
            assert (step["name"], step["status"]) == ("onextree_intelligence", "completed")
            assert execution["degraded"] is False


async def test_step_over_its_contract_timeout_fails_the_workflow_cleanly(stack: EmbeddedStack, tmp_path: Path) -> None:
    def tiny_hash_timeout(steps: dict[str, Any]) -> None:
        next(s for s in steps["steps"] if s["name"] == "hash_generation")["timeout_ms"] = 1

    settings = make_settings(stack, server={"contracts_dir": str(contracts_copy(tmp_path, tiny_hash_timeout,
                                                                                 file=STEPS_FILE))})  # fmt: skip
    namespace = _ns()
    content = "y" * (32 * 1024 * 1024)  # hashing 32 MiB takes well over 1 ms
    async with app_client(settings) as client:
        headers = {"X-API-Key": "onb_test_admin_key_0123456789abcdef"}
        response = await client.post("/stamp", json={"content": content, "namespace": namespace}, headers=headers)
        assert response.status_code == 413  # JSON bodies are capped at 10 MiB
        response = await client.post("/stamp", json={"content": content[:4_000_000], "namespace": namespace},
                                     headers=headers)  # fmt: skip
        assert response.status_code == 500
        problem = response.json()
        assert problem["type"].endswith("/workflow-failed")
        assert problem["failed_step"] == "hash_generation"
        execution = (await client.get(f"/orchestrator/workflows/{problem['workflow_id']}", headers=headers)).json()
        assert execution["state"] == "FAILED"
        assert [t["to_state"] for t in execution["transitions"]] == ["PROCESSING", "FAILED"]
        assert execution["steps"][-1]["name"] == "hash_generation"
        assert "timeout" in execution["steps"][-1]["error"]
        listed = (await client.get("/stamps", params={"namespace": namespace}, headers=headers)).json()
        assert listed["items"] == []  # the failed workflow stored no stamp


def test_contract_step_without_a_handler_stops_start_up(stack: EmbeddedStack, tmp_path: Path) -> None:
    def unknown_step(steps: dict[str, Any]) -> None:
        steps["steps"].append({"name": "sign_with_hsm", "type": "effect", "timeout_ms": 100})

    settings = make_settings(stack, server={"contracts_dir": str(contracts_copy(tmp_path, unknown_step,
                                                                                 file=STEPS_FILE))})  # fmt: skip
    with pytest.raises(ValueError, match=r"no handler for contract steps \['sign_with_hsm'\]"):
        create_app(settings)  # refused before anything connects
