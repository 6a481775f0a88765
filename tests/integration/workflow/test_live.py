"""Live progress of a run: ``GET /workflows/{id}/events`` across processes, and the ``/view`` page in Chromium.

The viewer's app runs no engine (``OMNINODE_WORKFLOW_ENGINE=false``): the session app's engine runs the tasks,
so every change reaches the stream through the Redis channel, as it would from another worker process.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from playwright.async_api import async_playwright
from prometheus_client import REGISTRY

from omninode_bridge.embedded import EmbeddedStack
from omninode_bridge.modules.workflow.services import LiveHub, live_stream
from tests.integration.conftest import ADMIN_KEY, live_server, make_settings, wait_until
from tests.support import REPO_ROOT
from tests.support.live_views import CHROMIUM, CHROMIUM_ARGS, require_chromium, sse_messages

HEADERS = {"X-API-Key": ADMIN_KEY}
GREEN = "rgb(218, 251, 225)"  # a completed task's fill
Client = AsyncTestClient[Litestar]


@pytest.fixture(scope="module")
async def viewer(stack: EmbeddedStack, client: Client) -> AsyncIterator[str]:
    """An app that serves the API but runs no task (``client``'s app, started first, runs them); one for the
    module (starting and stopping an app takes seconds)."""
    async with live_server(make_settings(stack, workflow={"engine": False})) as url:
        yield url


async def _submit(http: httpx.AsyncClient, body: dict[str, Any]) -> str:
    response = await http.post("/workflows", json=body, headers=HEADERS)
    assert response.status_code == 202, response.text
    return str(response.json()["run_id"])


async def _read_all(http: httpx.AsyncClient, run_id: str, timeout: float = 30) -> list[tuple[str, dict[str, Any]]]:
    """Every message of the run's stream, until the server closes it (after ``end``)."""
    out: list[tuple[str, dict[str, Any]]] = []
    async with asyncio.timeout(timeout), http.stream("GET", f"/workflows/{run_id}/events", headers=HEADERS) as response:
        assert response.status_code == 200, await response.aread()
        assert response.headers["content-type"].startswith("text/event-stream")
        async for message in sse_messages(response):
            out.append((message["event"], json.loads(message["data"])))
    return out


async def test_the_stream_sends_a_snapshot_then_each_change_pushed_from_another_process(
    viewer: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No poll within the test's time: each change must arrive through the Redis channel.
    monkeypatch.setattr(live_stream, "POLL_SECONDS", 60.0)
    monkeypatch.setattr(live_stream, "FALLBACK_POLL_SECONDS", 60.0)
    retry = {"max_attempts": 2, "initial_backoff_s": 0.1, "jitter": 0}
    # The engine starts the run as soon as it is submitted, and the stream opens after that: "a" runs long enough
    # for the snapshot to find it not yet completed (with 0.3 s, a stream opened later under load missed it
    # running). Each change after the snapshot comes through the channel.
    body = {"name": "live-chain", "tasks": [
        {"id": "a", "kind": "sleep", "params": {"seconds": 3}},
        {"id": "b", "kind": "sleep", "depends_on": ["a"], "params": {"seconds": 0.3, "fail_times": 1}, "retry": retry},
        {"id": "c", "kind": "noop", "depends_on": ["b"], "params": {"from_a": "{{ tasks.a.output.slept }}"}},
    ]}  # fmt: skip
    async with httpx.AsyncClient(base_url=viewer, timeout=30) as http:
        run_id = await _submit(http, body)
        messages = await _read_all(http, run_id)
        final = (await http.get(f"/workflows/{run_id}", headers=HEADERS)).json()

    kinds = [event for event, _ in messages]
    assert kinds[0] == "snapshot", kinds
    assert kinds[-1] == "end", kinds
    assert messages[0][1]["run_id"] == run_id
    assert len(messages[0][1]["tasks"]) == 3
    assert messages[-1][1]["status"] == "completed"
    latest = {t["task_id"]: t for t in messages[0][1]["tasks"]}
    seen = {task_id: [t["status"]] for task_id, t in latest.items()}  # the snapshot, then each change
    for event, data in messages:
        if event == "task":
            seen[data["task_id"]].append(data["status"])
            latest[data["task_id"]] = data
    assert "running" in seen["a"], seen
    assert seen["a"][-1] == "completed", seen
    assert seen["b"][-3:] == ["ready", "running", "completed"], seen  # the retry of b, then its second attempt
    assert latest["b"]["attempts"] == 2
    assert latest["c"]["output"] == {"from_a": 3}
    # What the stream left the viewer with is what the API says.
    for task in final["tasks"]:
        assert {k: latest[task["task_id"]][k] for k in ("status", "attempts", "finished_at", "output")} == {
            k: task[k] for k in ("status", "attempts", "finished_at", "output")
        }


async def test_without_any_announcement_the_poll_still_delivers_every_change(
    viewer: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As with Redis down and nothing published: only the stream's own poll of the rows.
    monkeypatch.setattr(LiveHub, "changed", lambda self, run_ids: None)
    monkeypatch.setattr(live_stream, "POLL_SECONDS", 0.2)
    monkeypatch.setattr(live_stream, "FALLBACK_POLL_SECONDS", 0.2)
    body = {"name": "live-poll", "tasks": [
        {"id": "a", "kind": "sleep", "params": {"seconds": 0.3}},
        {"id": "b", "kind": "noop", "depends_on": ["a"], "params": {"v": 7}},
    ]}  # fmt: skip
    async with httpx.AsyncClient(base_url=viewer, timeout=30) as http:
        run_id = await _submit(http, body)
        messages = await _read_all(http, run_id)
    assert messages[-1][0] == "end"
    assert messages[-1][1]["status"] == "completed"
    last = {data["task_id"]: data for event, data in messages if event == "task"}
    assert last["b"]["status"] == "completed"
    assert last["b"]["output"] == {"v": 7}


async def test_the_stream_of_an_ended_run_is_its_snapshot_and_end_and_it_is_guarded(viewer: str) -> None:
    async with httpx.AsyncClient(base_url=viewer, timeout=30) as http:
        done = await http.post("/workflows?wait=10", json={"name": "live-done", "tasks": [{"id": "x", "kind": "noop"}]},
                               headers=HEADERS)  # fmt: skip
        assert done.json()["status"] == "completed"
        messages = await _read_all(http, done.json()["run_id"])
        assert [event for event, _ in messages] == ["snapshot", "end"]
        assert (await http.get(f"/workflows/{uuid.uuid4()}/events", headers=HEADERS)).status_code == 404
        assert (await http.get(f"/workflows/{done.json()['run_id']}/events")).status_code == 401
        page = await http.get(f"/workflows/{done.json()['run_id']}/view")
        assert page.status_code == 200
        assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
        assert "<script src" not in page.text
        assert "http://" not in page.text.replace("http://www.w3.org", "")


async def test_a_viewer_that_leaves_stops_its_stream(viewer: str) -> None:
    def open_views() -> float:
        return REGISTRY.get_sample_value("omninode_workflow_live_viewers") or 0.0

    async def back_to(count: float) -> bool:
        return open_views() == count

    before = open_views()
    async with httpx.AsyncClient(base_url=viewer, timeout=30) as http:
        run_id = await _submit(http, {"name": "live-long", "tasks": [{"id": "s", "kind": "sleep",
                                                                      "params": {"seconds": 30}}]})  # fmt: skip
        async with http.stream("GET", f"/workflows/{run_id}/events", headers=HEADERS) as response:
            async with asyncio.timeout(10):
                first = await anext(sse_messages(response))
            assert first["event"] == "snapshot"
            assert open_views() == before + 1
        await wait_until(lambda: back_to(before), timeout=10, message="the stream outlived its viewer")
        assert (await http.post(f"/workflows/{run_id}/cancel", headers=HEADERS)).status_code == 200


async def test_the_view_page_colours_a_running_dag_as_tasks_finish(viewer: str) -> None:
    require_chromium()
    # The page must be drawn before "join" completes: "start" holds the run long enough for Chromium to load it
    # under load (with 0.8 s, the whole run could end in 1.6 s, before the page was drawn).
    body = {"name": "live-page", "tasks": [
        {"id": "start", "kind": "sleep", "params": {"seconds": 4}},
        {"id": "left", "kind": "sleep", "depends_on": ["start"], "params": {"seconds": 0.8}},
        {"id": "right", "kind": "sleep", "depends_on": ["start"], "params": {"seconds": 0.8}},
        {"id": "join", "kind": "noop", "depends_on": ["left", "right"], "params": {"n": 1}},
    ]}  # fmt: skip
    async with httpx.AsyncClient(base_url=viewer, timeout=30) as http, async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = await browser.new_page()
            run_id = await _submit(http, body)
            await page.goto(f"{viewer}/workflows/{run_id}/view#key={ADMIN_KEY}")
            assert ADMIN_KEY not in page.url, "the key must leave the address bar"
            join = page.locator('g.node[data-task="join"] rect')
            await join.wait_for(timeout=10_000)
            # Drawn while the run goes on: four nodes, four edges, the last task not finished yet.
            assert await page.locator("g.node").count() == 4
            assert await page.locator("path.edge").count() == 4
            before = await join.evaluate("r => getComputedStyle(r).fill")  # waiting: grey
            assert await page.locator('g.node[data-task="join"]').get_attribute("data-status") != "completed"
            assert before != GREEN
            await page.locator('g.node[data-task="join"][data-status="completed"]').wait_for(timeout=15_000)
            # The fill fades to the new colour in 0.3 s.
            fill = """() => getComputedStyle(document.querySelector('g.node[data-task="join"] rect')).fill"""
            await page.wait_for_function(f"() => ({fill})() == '{GREEN}'", timeout=5_000)
            await page.locator("#run-status.completed").wait_for(timeout=5_000)
            # A click shows the task's attempts, timings and output.
            await page.locator('g.node[data-task="left"]').click()
            await page.locator("#attempts tbody tr").wait_for(timeout=5_000)
            assert '"slept": 0.8' in await page.locator("#output").inner_text()
            assert "took" in await page.locator("#detail").inner_text()
        finally:
            await browser.close()


async def test_cli_submit_watch_follows_the_stream_to_the_end(viewer: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OMNINODE_")}
    env.update(OMNINODE_URL=viewer, OMNINODE_API_KEY=ADMIN_KEY, COLUMNS="160")
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "omninode_bridge.cli", "workflow", "submit",
        str(REPO_ROOT / "examples" / "workflows" / "diamond.yaml"), "--input", "who=ada", "--watch",
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode == 0, err.decode()
    assert json.loads(out)["outputs"]["join"] == {"said": "hello ada", "rows": 3}
    table = err.decode()
    assert "diamond" in table
    assert "completed" in table  # the live table's last state
