"""Per-kind caps of the engine (``OMNINODE_WORKFLOW_KIND_CONCURRENCY``), on a stack no other engine claims from."""

from __future__ import annotations

import datetime as dt

from omninode_bridge.embedded import EmbeddedStack
from tests.integration.conftest import ADMIN_KEY, app_client, make_settings
from tests.integration.workflow.test_engine import at, submit, tasks_of

HEADERS = {"X-API-Key": ADMIN_KEY}


def _most_at_once(intervals: list[tuple[dt.datetime, dt.datetime]]) -> int:
    """The largest number of intervals open at one instant (an end before a start at the same instant)."""
    edges = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals],
                   key=lambda edge: (edge[0], edge[1]))  # fmt: skip
    most = current = 0
    for _, step in edges:
        current += step
        most = max(most, current)
    return most


async def test_a_capped_kind_runs_at_most_its_cap_at_once_beside_uncapped_kinds(own_stack: EmbeddedStack) -> None:
    # One process's engine (the only one on this stack) with 8 slots, of which sleep tasks may hold 2.
    settings = make_settings(own_stack, workflow={"concurrency": 8, "kind_concurrency": "sleep=2"})
    sleeps = [{"id": f"s{i}", "kind": "sleep", "params": {"seconds": 0.8}} for i in range(6)]
    emits = [{"id": f"e{i}", "kind": "emit", "params": {"topic": "omninode_bridge_workflow_events_v1",
              "event_type": "Probe", "payload": {"i": i}}} for i in range(4)]  # fmt: skip
    async with app_client(settings) as client:
        run = await submit(client, HEADERS, {"name": "capped", "tasks": [*sleeps, *emits]}, wait=20)
    assert run["status"] == "completed", run
    tasks = tasks_of(run)
    spans = [(at(tasks[s["id"]]["started_at"]), at(tasks[s["id"]]["finished_at"])) for s in sleeps]
    assert _most_at_once(spans) == 2  # the cap, and reached (six tasks in three waves)
    assert all(tasks[e["id"]]["status"] == "completed" for e in emits)  # uncapped kinds are claimed beside them
    assert min(at(tasks[e["id"]]["finished_at"]) for e in emits) < max(start for start, _ in spans)
