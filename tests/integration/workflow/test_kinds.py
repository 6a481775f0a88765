"""Task kinds on the real stack: SSRF refusals and the allow list, named SQL queries, emit through the outbox."""

from __future__ import annotations

from typing import Any

from litestar import Litestar
from litestar.testing import AsyncTestClient

from tests.integration.conftest import ADMIN_KEY, app_client, make_settings, sql_rows
from tests.integration.workflow.receiver import receiver

HEADERS = {"X-API-Key": ADMIN_KEY}
Client = AsyncTestClient[Litestar]


async def run(client: Client, *tasks: dict[str, Any]) -> dict[str, dict[str, Any]]:
    body = {"name": "kinds", "on_failure": "stop", "tasks": list(tasks)}
    response = await client.post("/workflows?wait=20", json=body, headers=HEADERS)
    assert response.status_code == 200, response.text
    return {t["task_id"]: t for t in response.json()["tasks"]}


async def test_http_tasks_to_internal_addresses_are_refused(client: Client) -> None:
    with receiver() as seen:
        port = seen.url.rsplit(":", 1)[1]
        targets = {
            "loopback": f"http://127.0.0.1:{port}/echo", "v6": f"http://[::1]:{port}/echo",
            "metadata": "http://169.254.169.254/latest/meta-data/", "private": "http://10.0.0.1/",
            "name": f"http://localhost:{port}/echo",
        }  # fmt: skip
        tasks = await run(client, *({"id": k, "kind": "http", "params": {"url": u}} for k, u in targets.items()))
        for name in targets:
            assert tasks[name]["status"] == "failed", name
            assert "not a public address" in tasks[name]["error"], tasks[name]["error"]
        assert sum(seen.calls.values()) == 0


async def test_the_allow_setting_lets_a_local_server_through_and_redirects_are_checked(own_stack: Any) -> None:
    # Its own database: the session's app (no allow list) would claim these tasks too and refuse them.
    allowed = make_settings(own_stack, workflow={"http_allow": "127.0.0.1/32"})
    with receiver() as seen:
        async with app_client(allowed) as client:
            tasks = await run(
                client,
                {"id": "post", "kind": "http", "params": {"url": f"{seen.url}/echo", "method": "POST",
                                                         "json": {"x": 1}}},
                {"id": "use", "kind": "noop", "depends_on": ["post"],
                 "params": {"id": "{{ tasks.post.output.body.id }}"}},
            )  # fmt: skip
            hop = await run(client, {"id": "hop", "kind": "http",
                                     "params": {"url": f"{seen.url}/redirect?to=http://169.254.169.254/"}})  # fmt: skip
    assert tasks["post"]["status"] == "completed", tasks["post"]["error"]
    assert tasks["post"]["output"]["body"]["received"] == '{"x":1}'
    assert tasks["use"]["output"] == {"id": 42}
    assert hop["hop"]["status"] == "failed"
    assert "169.254.169.254" in hop["hop"]["error"]


async def test_named_sql_queries(client: Client) -> None:
    tasks = await run(
        client,
        {"id": "rows", "kind": "sql", "params": {"query": "series", "args": {"n": 3}}},
        {"id": "write", "kind": "sql", "params": {"query": "write_in_read_only"}},
        {"id": "slow", "kind": "sql", "params": {"query": "sleep", "args": {"seconds": 2}}},
    )
    assert tasks["rows"]["output"] == {"rows": [{"n": 1}, {"n": 2}, {"n": 3}], "row_count": 3, "truncated": False}
    assert tasks["write"]["status"] == "failed"
    assert "read-only" in tasks["write"]["error"] or "25006" in tasks["write"]["error"]
    assert tasks["slow"]["status"] == "failed"
    assert "57014" in tasks["slow"]["error"] or "timeout" in tasks["slow"]["error"]


async def test_sql_text_in_a_request_is_refused(client: Client) -> None:
    body = {"name": "inject", "tasks": [{"id": "x", "kind": "sql", "params": {"sql": "DELETE FROM wf_runs"}}]}
    response = await client.post("/workflows", json=body, headers=HEADERS)
    assert response.status_code == 422
    assert "SQL text is refused" in response.text


async def test_write_queries_and_emit_commit_with_the_task(client: Client, stack: Any) -> None:
    tasks = await run(
        client,
        {"id": "put", "kind": "sql", "params": {"query": "note_put", "args": {"key": "k-emit", "body": "hello"}}},
        {"id": "emit", "kind": "emit", "depends_on": ["put"],
         "params": {"topic": "omninode_bridge_workflow_events_v1", "event_type": "WorkflowNote",
                    "payload": {"key": "{{ tasks.put.output.rows.0.key }}"}}},
    )  # fmt: skip
    assert tasks["put"]["output"]["rows"] == [{"key": "k-emit"}]
    event_id = tasks["emit"]["output"]["event_id"]
    rows = await sql_rows(stack.urls["database_url"], "SELECT topic FROM event_outbox "
                          "WHERE event_id::text = :e", e=event_id)  # fmt: skip
    assert rows == [("omninode_bridge_workflow_events_v1",)], "the emitted event is in the outbox"
