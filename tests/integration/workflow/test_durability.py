"""Durability: a SIGKILLed app's runs finish after a restart without running completed tasks again; two apps on
one database run every task once."""

from __future__ import annotations

import asyncio
import signal
from typing import Any

import httpx
import pytest

from omninode_bridge.embedded import EmbeddedStack, free_port
from omninode_bridge.settings import Settings
from tests.integration.conftest import ADMIN_KEY, app_client, make_settings, sql_rows, start_serve, wait_until
from tests.integration.workflow.receiver import receiver

HEADERS = {"X-API-Key": ADMIN_KEY}


# Short leases so the restarted process takes over the killed one's tasks quickly; the receiver is on loopback.
_SERVE_ENV = {"OMNINODE_WORKFLOW_LEASE_SECONDS": "2", "OMNINODE_WORKFLOW_HTTP_ALLOW": "127.0.0.1"}


def _chain(url: str, n: int) -> dict[str, Any]:
    # The kill waits until every run's slow last task runs at once: it lasts longer than the runs' starts can
    # spread under load (2.5 s could pass before the last run's h3 started, and the first's had completed).
    tasks: list[dict[str, Any]] = []
    for i in range(4):
        tasks.append({"id": f"h{i}", "kind": "http", "depends_on": [f"h{i - 1}"] if i else [],
                      "params": {"url": f"{url}/echo?delay={0.4 if i < 3 else 6}"}})  # fmt: skip
    retry = {"max_attempts": 2, "initial_backoff_s": 3, "jitter": 0}
    tasks.append({"id": "flaky", "kind": "sleep", "params": {"fail_times": 1}, "retry": retry})
    return {"name": f"crash{n}", "tasks": tasks}


@pytest.mark.slow
async def test_sigkill_mid_run_then_restart_finishes_every_run_without_repeating_completed_tasks(
    own_stack: EmbeddedStack,
) -> None:
    # Its own database: the session's app (no allow list for the local receiver) would claim these tasks too.
    stack = own_stack
    database = stack.urls["database_url"]
    with receiver() as seen:
        port = free_port()
        process = start_serve(
            stack, port, OMNINODE_WORKFLOW_LEASE_SECONDS="2", OMNINODE_WORKFLOW_HTTP_ALLOW="127.0.0.1"
        )
        runs: list[str] = []
        try:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
                for n in range(5):
                    response = await http.post("/workflows", json=_chain(seen.url, n), headers=HEADERS)
                    assert response.status_code == 202, response.text
                    runs.append(response.json()["run_id"])

            async def in_flight() -> bool:  # the slow last http task is running, the flaky one waits to retry
                rows = await sql_rows(database, "SELECT count(*) FROM wf_tasks WHERE run_id::text = ANY(:r) "
                                      "AND task_id = 'h3' AND status = 'running'", r=runs)  # fmt: skip
                return bool(rows[0][0] == len(runs))

            await wait_until(in_flight, timeout=30)
        finally:
            process.send_signal(signal.SIGKILL)
            process.wait()
        done_before = await sql_rows(database, "SELECT run_id::text, task_id FROM wf_tasks WHERE run_id::text = "
                                     "ANY(:r) AND status = 'completed' AND kind = 'http'", r=runs)  # fmt: skip
        assert len(done_before) == 3 * len(runs)
        restarted = start_serve(
            stack, port, OMNINODE_WORKFLOW_LEASE_SECONDS="2", OMNINODE_WORKFLOW_HTTP_ALLOW="127.0.0.1"
        )
        try:

            async def finished() -> bool:
                rows = await sql_rows(database, "SELECT count(*) FROM wf_runs WHERE id::text = ANY(:r) "
                                      "AND status = 'completed'", r=runs)  # fmt: skip
                return bool(rows[0][0] == len(runs))

            await wait_until(finished, timeout=60, interval=0.2)
        finally:
            restarted.send_signal(signal.SIGTERM)
            restarted.wait(timeout=30)
        for run_id, task_id in done_before:
            assert seen.calls[f"{run_id}:{task_id}"] == 1, (run_id, task_id)
        for run_id in runs:
            assert 1 <= seen.calls[f"{run_id}:h3"] <= 2  # at most one extra call: the one in flight at the kill
        attempts = await sql_rows(database, "SELECT task_id, array_agg(status ORDER BY attempt) FROM wf_task_attempts "
                                  "WHERE run_id::text = ANY(:r) GROUP BY run_id, task_id", r=runs)  # fmt: skip
        for task_id, statuses in attempts:
            assert statuses.count("completed") == 1, (task_id, statuses)
            if task_id == "h3":
                assert statuses == ["lease_expired", "completed"]


async def test_two_apps_on_one_database_run_200_workflows_each_task_once(
    settings: Settings, stack: EmbeddedStack
) -> None:
    database = stack.urls["database_url"]
    other = make_settings(stack)
    body = {"name": "pair", "tasks": [
        {"id": "a", "kind": "noop"}, {"id": "b", "kind": "sleep", "depends_on": ["a"], "params": {"seconds": 0.01}},
        {"id": "c", "kind": "noop", "depends_on": ["a"]}, {"id": "d", "kind": "noop", "depends_on": ["b", "c"]},
    ]}  # fmt: skip
    async with app_client(settings) as first, app_client(other) as second:

        async def submit(i: int) -> str:
            client = first if i % 2 else second
            response = await client.post("/workflows", json=body, headers=HEADERS)
            assert response.status_code == 202, response.text
            return str(response.json()["run_id"])

        runs = await asyncio.gather(*(submit(i) for i in range(200)))
        # Beside them: a run with more tasks than max_parallel (claimed under its row's lock: never more than 2 at
        # once across both apps) and a 200-task fan-out both apps may claim by task rows at the same time.
        held = {"name": "held", "max_parallel": 2, "tasks": [
            {"id": f"s{i}", "kind": "sleep", "params": {"seconds": 0.15}} for i in range(6)]}  # fmt: skip
        fan = {"name": "fan", "max_parallel": 200, "tasks": [{"id": f"n{i}", "kind": "noop"} for i in range(200)]}
        for client, extra in ((first, held), (second, fan)):
            response = await client.post("/workflows", json=extra, headers=HEADERS)
            assert response.status_code == 202, response.text
            runs.append(str(response.json()["run_id"]))

        async def finished() -> bool:
            rows = await sql_rows(database, "SELECT count(*) FROM wf_runs WHERE id::text = ANY(:r) "
                                  "AND status = 'completed'", r=runs)  # fmt: skip
            return bool(rows[0][0] == len(runs))

        await wait_until(finished, timeout=120, interval=0.2)
    attempts = await sql_rows(database, "SELECT run_id, task_id, count(*), count(*) FILTER (WHERE status = "
                              "'completed'), count(DISTINCT worker) FROM wf_task_attempts WHERE run_id::text = ANY(:r) "
                              "GROUP BY run_id, task_id", r=runs)  # fmt: skip
    assert len(attempts) == 200 * 4 + 6 + 200
    assert all(row[2] == 1 and row[3] == 1 for row in attempts), [r for r in attempts if r[2] != 1][:5]
    workers = await sql_rows(database, "SELECT count(DISTINCT worker) FROM wf_task_attempts WHERE run_id::text = "
                             "ANY(:r)", r=runs)  # fmt: skip
    spans = await sql_rows(database, "SELECT t.started_at, t.finished_at FROM wf_tasks t JOIN wf_runs r ON "
                           "r.id = t.run_id WHERE r.id::text = ANY(:r) AND r.name = 'held'", r=runs)  # fmt: skip
    assert len(spans) == 6
    most = max(sum(1 for s, f in spans if s <= at < f) for at, _ in spans)
    assert most <= 2, f"{most} tasks of a max_parallel=2 run ran at once"
    # At least both apps (the session's other apps share the database and may claim some too).
    assert workers[0][0] >= 2, "both apps ran tasks"
