"""Claude Code hooks as Claude Code sends them (issue 11: defects 6, 7, 12, 13 and the hooks share of 3, 4, 5),
against the real stack; and the README's hook command run through ``sh -c`` against a live server."""

from __future__ import annotations

import asyncio
import json
import os
import re
import time
import uuid
from typing import Any

import httpx
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from omninode_bridge.embedded import free_port
from omninode_bridge.settings import Settings
from tests.integration.conftest import ADMIN_KEY, live_server, wait_until
from tests.support import DATA_DIR, REPO_ROOT

Client = AsyncTestClient[Litestar]
HEADERS = {"X-API-Key": ADMIN_KEY}
JSON = {**HEADERS, "Content-Type": "application/json"}
#: A recorded Claude Code session, one hook event per line exactly as Claude Code wrote it on the hook's stdin.
RECORDED = (DATA_DIR / "claude_code_session.jsonl").read_bytes().splitlines()
RECORDED_SESSION = json.loads(RECORDED[0])["session_id"]


def _event(name: str, session_id: str, **fields: Any) -> dict[str, Any]:
    return {
        "session_id": session_id, "transcript_path": f"/home/dev/.claude/projects/x/{session_id}.jsonl",
        "cwd": "/home/dev/x", "permission_mode": "default", "hook_event_name": name, **fields,
    }  # fmt: skip


async def _session(client: Client, session_id: str, **params: str) -> dict[str, Any] | None:
    response = await client.get(f"/hooks/sessions/{session_id}", params=params, headers=HEADERS)
    return response.json() if response.status_code == 200 else None


# --- pure logic ------------------------------------------------------------------------------------


# --- the recorded session --------------------------------------------------------------------------


async def test_recorded_claude_code_session_gives_paired_tool_calls_stops_and_a_closed_session(client: Client) -> None:
    stops = [line for line in RECORDED if b'"hook_event_name":"Stop"' in line]
    assert len(stops) == 3
    assert len(set(stops)) == 1, "the recording's three stops are byte-identical"
    answers = [await client.post("/hooks/claude-code", content=line, headers=JSON) for line in RECORDED]
    assert [a.status_code for a in answers] == [202] * len(RECORDED), [a.text for a in answers if a.status_code != 202]
    assert len({a.json()["event_id"] for a in answers}) == len(RECORDED)

    async def closed() -> bool:
        found = await _session(client, RECORDED_SESSION)
        return found is not None and found["session"]["event_count"] == len(RECORDED)

    await wait_until(closed, timeout=60, interval=0.2, message="the session was not processed")
    detail = await _session(client, RECORDED_SESSION)
    assert detail is not None
    session = detail["session"]
    assert (session["source"], session["namespace"], session["status"]) == ("claude-code", "default", "ended")
    assert session["ended_at"] is not None
    counts = session["counts_by_type"]
    assert counts["stop"] == 3
    assert counts["pre_tool_use"] == counts["post_tool_use"] == 20
    assert (counts["session_start"], counts["session_end"], counts["user_prompt_submit"]) == (1, 1, 3)
    calls = detail["tool_calls"]
    assert len(calls) == 20
    assert all(c["pre_event_id"] and c["post_event_id"] and c["duration_ms"] is not None for c in calls)
    failed = [c for c in calls if c["outcome"] == "error"]
    assert [c["tool_name"] for c in failed] == ["Bash"]
    assert "NameError" in failed[0]["error"]
    assert [e["event_type"] for e in detail["events"]].count("stop") == 3
    start = detail["events"][0]
    assert start["event_type"] == "session_start"
    assert start["data"] == json.loads(RECORDED[0])


# --- regression tests (issue 11) -------------------------------------------------------------------


async def test_d06_claude_code_hook_json_accepted_as_sent(client: Client) -> None:
    session_id = str(uuid.uuid4())
    payload = _event(
        "PreToolUse", session_id, tool_name="Bash", tool_use_id=f"toolu_{uuid.uuid4().hex}",
        tool_input={"command": "ls -la", "description": "List files"}, a_field_added_later={"x": [1]},
    )  # fmt: skip
    # Auto-detected on POST /hooks (hook_event_name), and at POST /hooks/claude-code with a source override.
    plain = await client.post("/hooks", json=payload, headers=HEADERS)
    assert plain.status_code == 202, plain.text
    assert plain.json()["correlation_id"] == session_id
    stored = (await client.get(f"/hooks/events/{plain.json()['event_id']}", headers=HEADERS)).json()
    assert (stored["source"], stored["event_type"], stored["session_id"]) == ("claude-code", "pre_tool_use", session_id)
    assert (stored["tool_name"], stored["tool_call_id"]) == ("Bash", payload["tool_use_id"])
    assert stored["data"] == payload, "the whole payload is kept, unknown fields included"
    for params, headers in (({"source": "my-agent"}, {}), ({}, {"X-Hook-Source": "my-agent"})):
        other = await client.post(
            "/hooks/claude-code", json=_event("Notification", session_id, message="Waiting"), params=params,
            headers={**HEADERS, **headers},
        )  # fmt: skip
        assert other.status_code == 202, other.text
        event = (await client.get(f"/hooks/events/{other.json()['event_id']}", headers=HEADERS)).json()
        assert (event["source"], event["event_type"]) == ("my-agent", "notification")
    wrong = await client.post("/hooks/claude-code", json={**payload, "tool_use_id": 7}, headers=HEADERS)
    assert wrong.status_code == 422
    assert wrong.json()["errors"][0]["field"] == "tool_use_id"
    missing = await client.post("/hooks/claude-code", json={"hook_event_name": "Stop"}, headers=HEADERS)
    assert missing.status_code == 422
    assert missing.json()["errors"][0]["field"] == "session_id"


async def test_d07_identical_stops_are_separate_events_unless_an_idempotency_key_repeats(client: Client) -> None:
    stop = json.dumps(_event("Stop", str(uuid.uuid4()), stop_hook_active=False)).encode()
    for path in ("/hooks/claude-code", "/hooks"):
        sent = [await client.post(path, content=stop, headers=JSON) for _ in range(3)]
        assert [r.status_code for r in sent] == [202, 202, 202]
        assert len({r.json()["event_id"] for r in sent}) == 3
    keyed = {**JSON, "Idempotency-Key": f"stop-{uuid.uuid4()}"}
    first = await client.post("/hooks/claude-code", content=stop, headers=keyed)
    again = await client.post("/hooks/claude-code", content=stop, headers=keyed)
    assert (first.status_code, again.status_code) == (202, 200)
    assert again.json() == {**first.json(), "status": "duplicate"}


async def test_d12_another_source_cannot_end_a_claude_code_session(client: Client) -> None:
    session_id = str(uuid.uuid4())
    start = await client.post("/hooks/claude-code", json=_event("SessionStart", session_id, source="startup"),
                              headers=HEADERS)  # fmt: skip
    assert start.status_code == 202
    intruder = {"source": "other-agent", "event_type": "session_end", "session_id": session_id}
    assert (await client.post("/hooks", json=intruder, headers=HEADERS)).status_code == 202

    async def both_processed() -> bool:
        ours = await _session(client, session_id, source="claude-code")
        theirs = await _session(client, session_id, source="other-agent")
        return ours is not None and theirs is not None

    await wait_until(both_processed, timeout=60, interval=0.2, message="sessions not processed")
    ours = await _session(client, session_id, source="claude-code")
    assert ours is not None
    assert ours["session"]["status"] == "active"
    ambiguous = await client.get(f"/hooks/sessions/{session_id}", headers=HEADERS)
    assert ambiguous.status_code == 409
    assert {s["source"] for s in ambiguous.json()["sessions"]} == {"claude-code", "other-agent"}
    listed = await client.get("/hooks/sessions", params={"source": "claude-code", "limit": 500}, headers=HEADERS)
    assert session_id in {s["session_id"] for s in listed.json()["items"]}


async def _key(client: Client, *namespaces: str) -> dict[str, str]:
    body = {"name": f"ns-{'-'.join(namespaces)}", "scopes": ["hooks"], "namespaces": list(namespaces)}
    response = await client.post("/admin/api-keys", json=body, headers=HEADERS)
    assert response.status_code == 201, response.text
    return {"X-API-Key": response.json()["key"]}


async def test_d13_namespace_restricted_key_sees_only_its_hooks(client: Client) -> None:
    team_a, team_b = f"a{uuid.uuid4().hex[:8]}", f"b{uuid.uuid4().hex[:8]}"
    key_a = await _key(client, team_a)
    session_id = str(uuid.uuid4())
    mine = await client.post("/hooks/claude-code", json=_event("SessionStart", session_id, source="startup"),
                             headers=key_a)  # fmt: skip
    assert mine.status_code == 202, mine.text
    theirs = await client.post("/hooks", headers=HEADERS, json={
        "source": "svc", "event_type": "session_start", "session_id": session_id, "namespace": team_b})  # fmt: skip
    source = f"nsb-{uuid.uuid4().hex[:8]}"
    created = await client.post("/hooks/sources", json={"name": source, "scheme": "none", "namespace": team_b},
                                headers=HEADERS)  # fmt: skip
    assert created.status_code == 201, created.text
    webhook = await client.post(f"/hooks/{source}", json={"secret_plan": "b"}, headers=HEADERS)
    assert webhook.status_code == 202
    hidden = [theirs.json()["event_id"], webhook.json()["event_id"]]
    stored = (await client.get(f"/hooks/events/{hidden[1]}", headers=HEADERS)).json()
    assert stored["namespace"] == team_b
    # Writes: only to its namespace (the default for a key with one namespace).
    assert (await client.get(f"/hooks/events/{mine.json()['event_id']}", headers=key_a)).json()["namespace"] == team_a
    other = {"source": "x", "event_type": "tick", "namespace": team_b}
    assert (await client.post("/hooks", json=other, headers=key_a)).status_code == 403
    assert (await client.post("/hooks/batch", json={"events": [other]}, headers=key_a)).status_code == 403
    assert (await client.post("/hooks/claude-code", json=_event("Stop", session_id), params={"namespace": team_b},
                              headers=key_a)).status_code == 403  # fmt: skip
    assert (await client.post(f"/hooks/{source}", json={}, headers=key_a)).status_code == 403
    # Reads: events, detail, replay, sessions, session detail, stats.
    listed = await client.get("/hooks/events", params={"limit": 500}, headers=key_a)
    assert {e["namespace"] for e in listed.json()["items"]} == {team_a}
    assert (await client.get("/hooks/events", params={"namespace": team_b}, headers=key_a)).status_code == 403
    for event_id in hidden:
        assert (await client.get(f"/hooks/events/{event_id}", headers=key_a)).status_code == 404
        assert (await client.post(f"/hooks/events/{event_id}/replay", headers=key_a)).status_code == 404

    async def processed() -> bool:
        return await _session(client, session_id, source="svc") is not None

    await wait_until(processed, timeout=60, interval=0.2, message="not processed")
    sessions = (await client.get("/hooks/sessions", params={"limit": 500}, headers=key_a)).json()["items"]
    assert {s["namespace"] for s in sessions} == {team_a}
    detail = await client.get(f"/hooks/sessions/{session_id}", headers=key_a)
    assert detail.status_code == 200, "the other namespace's session of the same id is invisible, not ambiguous"
    assert detail.json()["session"]["namespace"] == team_a
    hidden_session = await client.get(f"/hooks/sessions/{session_id}", params={"source": "svc"}, headers=key_a)
    assert hidden_session.status_code == 404
    stats = (await client.get("/hooks/stats", headers=key_a)).json()
    assert {s["source"] for s in stats["sources"]} <= {"claude-code"}
    assert stats["sessions_total"] == 1


async def _first_hook(http: httpx.AsyncClient, params: dict[str, str], headers: dict[str, str]) -> dict[str, Any]:
    async with http.stream("GET", "/hooks/stream", params=params, headers=headers) as response:
        assert response.status_code == 200
        async with asyncio.timeout(20):
            async for line in response.aiter_lines():
                if line.startswith("data: "):
                    return json.loads(line.removeprefix("data: "))
    raise AssertionError("the stream ended")


async def test_d13_stream_and_its_tickets_show_a_restricted_key_only_its_namespace(
    settings: Settings, client: Client
) -> None:
    team_a, team_b = f"a{uuid.uuid4().hex[:8]}", f"b{uuid.uuid4().hex[:8]}"
    key_a = await _key(client, team_a)
    async with live_server(settings) as base, httpx.AsyncClient(base_url=base, timeout=30) as http:
        ticket = (await http.post("/hooks/stream/tickets", headers=key_a)).json()["ticket"]
        for params, headers in (({}, key_a), ({"ticket": ticket}, {})):
            reader = asyncio.create_task(_first_hook(http, params, headers))

            async def post_both(reader: asyncio.Task[dict[str, Any]] = reader) -> bool:
                # Until the viewer has connected, each round is missed by it; the first one it sees must be A's.
                for namespace in (team_b, team_a):
                    hook = {"source": "ns-stream", "event_type": "tick", "namespace": namespace}
                    assert (await http.post("/hooks", json=hook, headers=HEADERS)).status_code == 202
                return reader.done()

            await wait_until(post_both, timeout=20, interval=0.1, message="the stream showed nothing")
            assert reader.result()["namespace"] == team_a
        refused = await http.get("/hooks/stream", params={"namespace": team_b}, headers=key_a)
        assert refused.status_code == 403


async def test_session_start_after_session_end_reopens_the_session(client: Client) -> None:
    session_id = str(uuid.uuid4())
    started = _event("SessionStart", session_id, source="startup")
    for event in (started, _event("SessionEnd", session_id, reason="clear")):
        assert (await client.post("/hooks/claude-code", json=event, headers=HEADERS)).status_code == 202

    async def status(expected: str, count: int) -> bool:
        found = await _session(client, session_id)
        return found is not None and (found["session"]["status"], found["session"]["event_count"]) == (expected, count)

    await wait_until(lambda: status("ended", 2), timeout=60, interval=0.2, message="not ended")
    resume = _event("SessionStart", session_id, source="resume")
    assert (await client.post("/hooks/claude-code", json=resume, headers=HEADERS)).status_code == 202
    await wait_until(lambda: status("active", 3), timeout=60, interval=0.2, message="not reopened")


# --- input types (defects 3, 4, 5 and the hooks share of 14) ---------------------------------------

_HOOK = {"source": "inputs", "event_type": "tick"}


@pytest.mark.parametrize(
    "path",
    [
        "/hooks/events?source=%00", "/hooks/events?event_type=%00", "/hooks/events?session_id=%00",
        "/hooks/events?correlation_id=%00", "/hooks/events?tool_name=%00", "/hooks/stats?source=%00",
        "/hooks/sessions?source=%00", "/hooks/sessions/a%00b", "/hooks/sessions/x?source=%00",
        "/hooks/sources/a%00b", "/hooks/stream?source=%00",
    ],
)  # fmt: skip
async def test_d03_nul_in_hooks_query_and_path_is_422(client: Client, path: str) -> None:
    response = await client.get(path, headers=HEADERS)
    assert response.status_code == 422, response.text


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/hooks", {**_HOOK, "data": {"k": "\u0000"}}),
        ("/hooks", {**_HOOK, "data": {"k\u0000": 1}}),
        ("/hooks", {**_HOOK, "session_id": "a\u0000"}),
        ("/hooks/batch", {"events": [{**_HOOK, "data": {"deep": ["\u0000"]}}]}),
        ("/hooks/claude-code", _event("Stop", "s\u0000")),
        ("/hooks/claude-code", _event("PreToolUse", "s", tool_input={"command": "\u0000"})),
        ("/hooks/sources", {"name": "nul-src", "scheme": "none", "description": "a\u0000b"}),
    ],
)
async def test_d03_nul_in_hooks_json_is_422(client: Client, path: str, body: dict[str, Any]) -> None:
    response = await client.post(path, json=body, headers=HEADERS)
    assert response.status_code == 422, response.text


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({**_HOOK, "timestamp": "9999-12-31T23:59:59-14:00"}, "timestamp"),
        ({**_HOOK, "timestamp": "1969-12-31T23:59:59Z"}, "timestamp"),
        ({**_HOOK, "timestamp": "2025-01-01T00:00:00"}, "timestamp"),
        ({**_HOOK, "timestamp": 0}, "timestamp"),
        ({**_HOOK, "timestamp": "1700000000"}, "timestamp"),
        ({**_HOOK, "session_id": 5}, "session_id"),
    ],
)
async def test_d04_hook_timestamps_and_types_are_strict(client: Client, body: dict[str, Any], field: str) -> None:
    response = await client.post("/hooks", json=body, headers=HEADERS)
    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["field"] == field
    batch = await client.post("/hooks/batch", json={"events": [_HOOK, body]}, headers=HEADERS)
    assert batch.status_code == 422, batch.text
    assert batch.json()["errors"][0]["field"] == f"events[1].{field}"


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/hooks/events", {"cursor": "99999999999999999999999"}),
        ("/hooks/events", {"limit": "1e3"}),
        ("/hooks/events", {"since": "2025-01-01T00:00:00"}),
        ("/hooks/events", {"until": "9999-12-31T23:59:59-14:00"}),
        ("/hooks/sessions", {"cursor": "not-a-cursor"}),
        ("/hooks/sessions", {"limit": "0"}),
    ],
)
async def test_d04_hooks_cursors_limits_and_datetimes_are_bounded(
    client: Client, path: str, params: dict[str, str]
) -> None:
    response = await client.get(path, params=params, headers=HEADERS)
    assert response.status_code in (400, 422), response.text
    assert response.headers["content-type"].startswith("application/problem+json")


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/hooks", {**_HOOK, "source": "agent\n"}),
        ("/hooks", {**_HOOK, "event_type": "tick\n"}),
        ("/hooks", {**_HOOK, "correlation_id": "c1\n"}),
        ("/hooks", {**_HOOK, "namespace": "teamA\n"}),
        ("/hooks/sources", {"name": "nl-src\n", "scheme": "none"}),
        ("/hooks/claude-code", _event("Stop\n", "s")),
    ],
)
async def test_d05_trailing_newline_is_refused(client: Client, path: str, body: dict[str, Any]) -> None:
    response = await client.post(path, json=body, headers=HEADERS)
    assert response.status_code == 422, response.text


async def test_d05_trailing_newline_in_query_filters_is_refused(client: Client) -> None:
    for name in ("source", "event_type", "correlation_id"):
        response = await client.get("/hooks/events", params={name: "x\n"}, headers=HEADERS)
        assert response.status_code == 422, response.text


async def test_d14_hook_bodies_must_be_json_and_not_empty(client: Client) -> None:
    body = json.dumps(_HOOK).encode()
    for path in ("/hooks", "/hooks/claude-code", "/hooks/batch"):
        plain = await client.post(path, content=body, headers={**HEADERS, "Content-Type": "text/plain"})
        assert plain.status_code == 415, plain.text
        bare = await client.post(path, content=body, headers=HEADERS)
        assert bare.status_code == 415, bare.text
        empty = await client.post(path, content=b"", headers=JSON)
        assert empty.status_code == 400, empty.text
        assert "empty" in empty.json()["detail"]
        assert "'data'" not in empty.json()["detail"]
    nested = b'{"source": "inputs", "event_type": "tick", "data": {"d": ' + b"[" * 5000 + b"]" * 5000 + b"}}"
    deep = await client.post("/hooks", content=nested, headers=JSON)
    assert deep.status_code == 422
    broken = await client.post("/hooks", content=b'{"source": "a\xff", "event_type": "x"}', headers=JSON)
    assert broken.status_code == 400


# --- the README's hook command ---------------------------------------------------------------------


def _readme_hook_commands() -> tuple[str, dict[str, list[str]]]:
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("### Claude Code") :]
    shown = re.search(r"```sh\n(.+?)\n```", section, re.S)
    settings = re.search(r"```json\n(.+?)\n```", section, re.S)
    assert shown is not None
    assert settings is not None
    hooks = json.loads(settings.group(1))["hooks"]
    commands = {event: [h["command"] for entry in entries for h in entry["hooks"]] for event, entries in hooks.items()}
    return shown.group(1), commands


async def _run_hook(command: str, event: bytes, base_url: str, key: str) -> tuple[int, bytes, bytes, float]:
    env = {**os.environ, "OMNINODE_API_KEY": key, "OMNINODE_URL": base_url}
    started = time.monotonic()
    process = await asyncio.create_subprocess_exec(
        "sh", "-c", command, env=env,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    stdout, stderr = await process.communicate(event)
    return process.returncode or 0, stdout, stderr, time.monotonic() - started


def test_readme_settings_hook_every_event_with_the_shown_command() -> None:
    shown, commands = _readme_hook_commands()
    expected = {"SessionStart", "UserPromptSubmit", "PreToolUse", "PostToolUse", "PostToolUseFailure",
                "Notification", "Stop", "SubagentStop", "PreCompact", "SessionEnd"}  # fmt: skip
    assert set(commands) == expected
    assert all(found == [shown] for found in commands.values())
    assert "--max-time" in shown
    assert shown.endswith(">/dev/null 2>&1 || true")


async def test_readme_hook_command_posts_the_event_and_never_fails(settings: Settings, client: Client) -> None:
    shown, _ = _readme_hook_commands()
    session_id = str(uuid.uuid4())
    event = json.dumps(_event("UserPromptSubmit", session_id, prompt="Run the tests")).encode()
    async with live_server(settings) as base:
        code, out, err, _ = await _run_hook(shown, event, base, ADMIN_KEY)
        assert (code, out, err) == (0, b"", b"")
        page = await client.get("/hooks/events", params={"session_id": session_id}, headers=HEADERS)
        assert [e["event_type"] for e in page.json()["items"]] == ["user_prompt_submit"]
        # A wrong key is refused by the service, and still costs the agent nothing.
        assert (await _run_hook(shown, event, base, "onb_wrong"))[:3] == (0, b"", b"")
    # The service is down: exit 0 at once, nothing printed.
    code, out, err, elapsed = await _run_hook(shown, event, f"http://127.0.0.1:{free_port()}", ADMIN_KEY)
    assert (code, out, err) == (0, b"", b"")
    assert elapsed < 3.0
