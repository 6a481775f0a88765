"""Bulk submit (``POST /workflows/batch``) on the real embedded stack: all stored in one statement, or none."""

from __future__ import annotations

import uuid
from typing import Any

from litestar import Litestar
from litestar.testing import AsyncTestClient

from omninode_bridge.embedded import EmbeddedStack
from omninode_bridge.modules.workflow import messages
from tests.integration.conftest import sql_rows, wait_until

Client = AsyncTestClient[Litestar]


async def test_a_batch_stores_every_run_with_its_tasks_and_events_and_each_runs(
    client: Client, admin_headers: dict[str, str], stack: EmbeddedStack
) -> None:
    name = f"bulk{uuid.uuid4().hex[:8]}"
    chain = [{"id": "a", "kind": "noop", "params": {"v": "{{ inputs.v }}"}},
             {"id": "b", "kind": "noop", "depends_on": ["a"], "params": {"got": "{{ tasks.a.output.v }}"}}]  # fmt: skip
    workflows: list[dict[str, Any]] = [{"name": name, "inputs": {"v": i}, "tasks": chain} for i in range(3)]
    # More tasks than max_parallel: claimed under its run's lock, not by the task rows.
    workflows.append({"name": name, "max_parallel": 1, "tasks": [{"id": f"t{i}", "kind": "noop"} for i in range(3)]})
    response = await client.post("/workflows/batch", json={"workflows": workflows}, headers=admin_headers)
    assert response.status_code == 202, response.text
    run_ids = response.json()["run_ids"]
    assert len(set(run_ids)) == 4

    async def all_completed() -> bool:
        states = [(await client.get(f"/workflows/{r}", headers=admin_headers)).json() for r in run_ids]
        return all(s["status"] == "completed" for s in states)

    await wait_until(all_completed, timeout=15)
    for i, run_id in enumerate(run_ids[:3]):  # in the order of the definitions
        state = (await client.get(f"/workflows/{run_id}", headers=admin_headers)).json()
        assert {t["task_id"]: t["output"] for t in state["tasks"]}["b"] == {"got": i}
    free = await sql_rows(stack.urls["database_url"], "SELECT free FROM wf_runs WHERE name = :name ORDER BY id",
                          name=name)  # fmt: skip
    assert [r.free for r in free] == [True, True, True, False]
    events = await sql_rows(stack.urls["database_url"], "SELECT key, event_type FROM event_outbox "
                            "WHERE key = ANY(:keys) AND event_type IN (:submitted, :started)", keys=run_ids,
                            submitted=messages.RUN_SUBMITTED, started=messages.RUN_STARTED)  # fmt: skip
    assert sorted((r.key, r.event_type) for r in events) == sorted(
        (r, t) for r in run_ids for t in (messages.RUN_SUBMITTED, messages.RUN_STARTED)
    )


async def test_a_batch_with_invalid_definitions_names_each_by_index_and_stores_none(
    client: Client, admin_headers: dict[str, str], stack: EmbeddedStack
) -> None:
    name = f"bulkbad{uuid.uuid4().hex[:8]}"
    good = {"name": name, "tasks": [{"id": "a", "kind": "noop"}]}
    workflows = [good, {"name": name, "tasks": [{"id": "a", "kind": "noop", "depends_on": ["ghost"]}]}, good,
                 {"name": name, "tasks": [{"id": "a", "kind": "teleport"}, {"id": "a", "kind": "noop"}]}]  # fmt: skip
    response = await client.post("/workflows/batch", json={"workflows": workflows}, headers=admin_headers)
    assert response.status_code == 422, response.text
    fields = {(e["field"], e["message"]) for e in response.json()["errors"]}
    assert ("workflows[1].tasks[0].depends_on", "task 'a' depends on unknown task 'ghost'") in fields
    assert {f for f, _ in fields} == {"workflows[1].tasks[0].depends_on", "workflows[3].tasks[0].kind",
                                      "workflows[3].tasks[1].id"}  # fmt: skip
    stored = await sql_rows(stack.urls["database_url"], "SELECT id FROM wf_runs WHERE name = :name", name=name)
    assert stored == []
    over = await client.post("/workflows/batch", json={"workflows": [good] * 1001}, headers=admin_headers)
    assert over.status_code == 422
    assert "1001 workflows is over the limit of 1000" in over.json()["detail"]
    empty = await client.post("/workflows/batch", json={"workflows": []}, headers=admin_headers)
    assert empty.status_code == 422
