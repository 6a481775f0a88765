"""The workflow engine on the real embedded stack: parallel DAGs, templates, retries, compensation, cancel."""

from __future__ import annotations

import datetime as dt
from typing import Any

from litestar import Litestar
from litestar.testing import AsyncTestClient
from prometheus_client import REGISTRY
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from omninode_bridge.embedded import EmbeddedStack
from tests.integration.conftest import wait_until

Client = AsyncTestClient[Litestar]


async def submit(client: Client, headers: dict[str, str], body: dict[str, Any], wait: int = 20) -> dict[str, Any]:
    response = await client.post(f"/workflows?wait={wait}", json=body, headers=headers)
    assert response.status_code in (200, 202), response.text
    return dict(response.json())


def tasks_of(run: dict[str, Any], phase: str = "forward") -> dict[str, dict[str, Any]]:
    return {t["task_id"]: t for t in run["tasks"] if t["phase"] == phase}


def at(value: str) -> dt.datetime:
    return dt.datetime.fromisoformat(value)


async def test_diamond_and_fan_out_run_in_parallel_with_templated_outputs(
    client: Client, admin_headers: dict[str, str]
) -> None:
    # Overlap is judged by the tasks' claim and finish times: each sleep is the slack allowed between the claims
    # of tasks that should run together (0.3 s was within reach of a claim round trip under load).
    fan = [{"id": f"f{i}", "kind": "sleep", "depends_on": ["b", "c"], "params": {"seconds": 1}} for i in range(10)]
    body = {
        "name": "diamond",
        "inputs": {"who": "ada", "n": 2},
        "tasks": [
            {"id": "a", "kind": "noop", "params": {"greeting": "hello {{ inputs.who }}", "n": "{{ inputs.n }}"}},
            {"id": "b", "kind": "sleep", "depends_on": ["a"], "params": {"seconds": 1}},
            {"id": "c", "kind": "sleep", "depends_on": ["a"], "params": {"seconds": 1}},
            *fan,
            {"id": "d", "kind": "noop", "depends_on": [f["id"] for f in fan],
             "params": {"said": "{{ tasks.a.output.greeting }}", "n": "{{ tasks.a.output.n }}",
                        "slept": "{{ tasks.b.output.slept }}"}},
        ],
    }  # fmt: skip
    run = await submit(client, admin_headers, body)
    assert run["status"] == "completed", run
    tasks = tasks_of(run)
    assert tasks["d"]["output"] == {"said": "hello ada", "n": 2, "slept": 1}
    # b and c overlap, and the ten fan-out tasks overlap one another.
    assert at(tasks["b"]["started_at"]) < at(tasks["c"]["finished_at"])
    assert at(tasks["c"]["started_at"]) < at(tasks["b"]["finished_at"])
    starts = [at(tasks[f"f{i}"]["started_at"]) for i in range(10)]
    ends = [at(tasks[f"f{i}"]["finished_at"]) for i in range(10)]
    assert max(starts) < min(ends), "the fan-out tasks did not overlap"
    assert all(t["attempts"] == 1 for t in tasks.values())


async def test_invalid_definitions_are_refused_with_every_error(client: Client, admin_headers: dict[str, str]) -> None:
    body = {"name": "bad", "tasks": [
        {"id": "a", "kind": "noop", "depends_on": ["c"]}, {"id": "b", "kind": "noop", "depends_on": ["a"]},
        {"id": "c", "kind": "noop", "depends_on": ["b"]}, {"id": "x", "kind": "noop", "depends_on": ["ghost"]},
    ]}  # fmt: skip
    response = await client.post("/workflows", json=body, headers=admin_headers)
    assert response.status_code == 422
    problem = response.json()
    assert "a -> c -> b -> a" in problem["detail"]
    assert {e["message"] for e in problem["errors"]} == {
        "task 'x' depends on unknown task 'ghost'", "the dependencies form a cycle: a -> c -> b -> a"}  # fmt: skip


async def test_a_task_failing_twice_then_succeeding_has_three_attempts_with_backoff(
    client: Client, admin_headers: dict[str, str]
) -> None:
    retry = {"max_attempts": 3, "initial_backoff_s": 0.2, "multiplier": 2, "jitter": 0}
    body = {"name": "flaky", "tasks": [{"id": "t", "kind": "sleep", "params": {"fail_times": 2}, "retry": retry}]}
    run = await submit(client, admin_headers, body)
    assert run["status"] == "completed", run
    detail = (await client.get(f"/workflows/{run['run_id']}/tasks/t", headers=admin_headers)).json()
    log = detail["attempt_log"]
    assert [a["status"] for a in log] == ["failed", "failed", "completed"]
    gaps = [(at(log[i + 1]["started_at"]) - at(log[i]["finished_at"])).total_seconds() for i in range(2)]
    assert gaps[0] >= 0.19, gaps
    assert gaps[1] >= 0.39, gaps


async def test_a_failure_in_step_3_compensates_steps_2_and_1_in_that_order(
    client: Client, admin_headers: dict[str, str]
) -> None:
    def step(i: int, **extra: Any) -> dict[str, Any]:
        undo = {"kind": "noop", "params": {"undo": f"{{{{ tasks.s{i}.output.step }}}}"}}
        return {"id": f"s{i}", "kind": "noop", "depends_on": [f"s{i - 1}"] if i > 1 else [], "params": {"step": i},
                "compensate": undo, **extra}  # fmt: skip

    body = {"name": "saga", "tasks": [step(1), step(2), {**step(3), "kind": "sleep", "params": {"fail_times": 5}},
                                      step(4)]}  # fmt: skip
    run = await submit(client, admin_headers, body)
    assert (run["status"], run["outcome"]) == ("failed", "compensated"), run
    forward, undo = tasks_of(run), tasks_of(run, "compensate")
    assert [forward[f"s{i}"]["status"] for i in range(1, 5)] == ["completed", "completed", "failed", "cancelled"]
    assert set(undo) == {"s1", "s2"}
    assert undo["s2"]["output"] == {"undo": 2}
    assert undo["s1"]["output"] == {"undo": 1}
    assert at(undo["s2"]["finished_at"]) <= at(undo["s1"]["started_at"])


async def test_cancel_mid_run_starts_no_new_task_and_compensates(client: Client, admin_headers: dict[str, str]) -> None:
    body = {"name": "long", "tasks": [
        {"id": "a", "kind": "noop", "compensate": {"kind": "noop", "params": {"undo": "a"}}},
        {"id": "b", "kind": "sleep", "depends_on": ["a"], "params": {"seconds": 30}},
        {"id": "c", "kind": "noop", "depends_on": ["b"]},
    ]}  # fmt: skip
    accepted = await submit(client, admin_headers, body, wait=0)
    run_id = accepted["run_id"]

    async def b_running() -> bool:
        run = (await client.get(f"/workflows/{run_id}", headers=admin_headers)).json()
        return bool(tasks_of(run)["b"]["status"] == "running")

    await wait_until(b_running, timeout=10)
    response = await client.post(f"/workflows/{run_id}/cancel", headers=admin_headers)
    assert response.status_code == 200, response.text

    async def ended() -> bool:
        run = (await client.get(f"/workflows/{run_id}", headers=admin_headers)).json()
        return bool(run["status"] == "cancelled")

    await wait_until(ended, timeout=15)
    run = (await client.get(f"/workflows/{run_id}", headers=admin_headers)).json()
    forward = tasks_of(run)
    assert (forward["b"]["status"], forward["c"]["status"], forward["c"]["started_at"]) == (
        "cancelled",
        "cancelled",
        None,
    )
    assert run["outcome"] == "compensated"
    assert tasks_of(run, "compensate")["a"]["output"] == {"undo": "a"}
    assert (await client.post(f"/workflows/{run_id}/cancel", headers=admin_headers)).status_code == 409


async def test_the_same_idempotency_key_returns_the_same_run(client: Client, admin_headers: dict[str, str]) -> None:
    import asyncio
    import uuid

    headers = {**admin_headers, "Idempotency-Key": f"wf-{uuid.uuid4()}"}
    body = {"name": "once", "tasks": [{"id": "a", "kind": "noop"}]}
    responses = await asyncio.gather(*(client.post("/workflows", json=body, headers=headers) for _ in range(5)))
    assert {r.status_code for r in responses} == {202}
    assert len({r.json()["run_id"] for r in responses}) == 1


async def test_noop_tasks_done_in_the_claim_transaction_skip_on_when_and_feed_templates(
    client: Client, admin_headers: dict[str, str]
) -> None:
    # noop tasks complete in the transaction that claims them (set-based); a false `when` skips one, its
    # dependents still run, and the outputs reach the templates downstream.
    body = {"name": "inline", "inputs": {"go": False}, "tasks": [
        {"id": "a", "kind": "noop", "params": {"v": 1}},
        {"id": "b", "kind": "noop", "depends_on": ["a"], "when": "{{ inputs.go }}", "params": {"v": 2}},
        {"id": "c", "kind": "noop", "depends_on": ["a", "b"], "params": {"from_a": "{{ tasks.a.output.v }}"}},
    ]}  # fmt: skip
    run = await submit(client, admin_headers, body)
    assert run["status"] == "completed", run
    tasks = tasks_of(run)
    assert (tasks["a"]["status"], tasks["b"]["status"], tasks["c"]["status"]) == ("completed", "skipped", "completed")
    assert tasks["c"]["output"] == {"from_a": 1}
    detail = (await client.get(f"/workflows/{run['run_id']}/tasks/a", headers=admin_headers)).json()
    assert [(a["attempt"], a["status"]) for a in detail["attempt_log"]] == [(1, "completed")]
    assert detail["attempt_log"][0]["finished_at"] is not None


async def test_a_free_run_left_unsettled_by_a_dead_process_is_ended_by_the_sweep(
    client: Client, admin_headers: dict[str, str], stack: EmbeddedStack
) -> None:
    # A free run (no more tasks than max_parallel) ends after its claims commit (batch.settle); a process that
    # died between the two leaves it running with every task done: the sweep ends it. Made here by putting a
    # completed run back to running.
    run = await submit(client, admin_headers, {"name": "stranded", "tasks": [
        {"id": "a", "kind": "noop"}, {"id": "b", "kind": "noop", "depends_on": ["a"]}]})  # fmt: skip
    assert run["status"] == "completed", run
    engine = create_async_engine(stack.urls["database_url"])
    try:
        async with engine.begin() as conn:
            free = await conn.scalar(text("UPDATE wf_runs SET status = 'running', finished_at = NULL "
                                          "WHERE id = :run RETURNING free"), {"run": run["run_id"]})  # fmt: skip
        assert free is True

        async def ended() -> bool:
            response = await client.get(f"/workflows/{run['run_id']}", headers=admin_headers)
            return bool(response.json()["status"] == "completed")

        await wait_until(ended, timeout=10)
    finally:
        await engine.dispose()


async def test_gauges_show_the_runs_tasks_and_queue_in_flight(client: Client, admin_headers: dict[str, str]) -> None:
    # One task runs at a time (max_parallel 1): while the first sleeps, the other two are due and wait in the queue.
    # The gauges are read from the database every 2 s (and that read can lag under load): the first task sleeps
    # long enough for several reads to see it (3 s left room for one or two, missed under load); the run is
    # cancelled at the end, so the sleep costs nothing.
    body = {"name": "gauged", "max_parallel": 1,
            "tasks": [{"id": f"s{i}", "kind": "sleep", "params": {"seconds": 30}} for i in range(3)]}  # fmt: skip
    run = await submit(client, admin_headers, body, wait=0)

    def gauge(name: str, **labels: str) -> float:
        return REGISTRY.get_sample_value(name, labels) or 0.0

    async def in_flight() -> bool:
        return (gauge("omninode_workflow_runs_active", status="running") >= 1
                and gauge("omninode_workflow_tasks_active", status="running") >= 1
                and gauge("omninode_workflow_tasks_active", status="ready") >= 2
                and gauge("omninode_workflow_queue_depth") >= 2)  # fmt: skip

    try:
        await wait_until(in_flight, timeout=25)
    finally:
        response = await client.post(f"/workflows/{run['run_id']}/cancel?compensate=false", headers=admin_headers)
        assert response.status_code in (200, 202), response.text
