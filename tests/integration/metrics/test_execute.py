"""POST /execute end to end: the real embedded stack and a real HTTP server speaking OpenAI's protocol."""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from redis.asyncio import Redis

from omninode_bridge.core.events import decode_envelope
from omninode_bridge.embedded import EmbeddedStack
from tests.integration.conftest import ADMIN_KEY, app_client, live_server, make_settings, sql_rows, wait_until
from tests.integration.metrics.fake_openai import Behaviour, FakeOpenAI, serve_fake_openai
from tests.support.kafka_helpers import read_topic

SECRET = "sk-test-upstream-secret-0123456789abcdef"
HEADERS = {"X-API-Key": ADMIN_KEY}
COOLDOWN_SECONDS = 5.0


def _catalog(base_url: str) -> str:
    return f"""
task_types:
  chat: {{checks: [{{kind: non_empty}}]}}
  analysis: {{checks: [{{kind: non_empty}}, {{kind: min_length, value: 10}}]}}
  classification: {{checks: [{{kind: non_empty}}, {{kind: json}}]}}
  judged: {{checks: [{{kind: non_empty}}, {{kind: judge, model: judge}}]}}
  grading: {{}}
models:
  - {{id: fast, base_url: '{base_url}', model: fast-m, task_types: [chat, classification, judged],
     api_key_env: METRICS_TEST_KEY, price: {{input_per_million: 1, output_per_million: 2}}}}
  - {{id: flaky, base_url: '{base_url}', model: flaky-m, task_types: [analysis],
     price: {{input_per_million: 0.1, output_per_million: 0.1}}}}
  - {{id: backup, base_url: '{base_url}', model: backup-m, task_types: [analysis],
     price: {{input_per_million: 5, output_per_million: 5}}}}
  - {{id: judge, base_url: '{base_url}', model: judge-m, task_types: [grading],
     price: {{input_per_million: 1000, output_per_million: 1000}}}}
"""


@pytest.fixture(scope="module")
async def upstream() -> AsyncIterator[tuple[FakeOpenAI, str]]:
    """The fake model server of this module."""
    async with serve_fake_openai() as served:
        yield served


@pytest.fixture(scope="module")
def metrics_settings(stack: EmbeddedStack, upstream: tuple[FakeOpenAI, str], tmp_path_factory: Any) -> Any:
    """Settings with the test catalog, a short cooldown and no exploration (so the failover order is known).

    The cooldown must outlast the test's request after the one that started it (with a 1 s cooldown, a request
    that took longer than that under load found the model back in rotation); tests wait for its end by polling.
    """
    path = Path(tmp_path_factory.mktemp("metrics")) / "models.yaml"
    path.write_text(_catalog(upstream[1]))
    os.environ["METRICS_TEST_KEY"] = SECRET
    return make_settings(
        stack, metrics={"models_file": str(path), "cooldown_seconds": COOLDOWN_SECONDS, "exploration": "none"}
    )


async def _cooled_down(api: AsyncTestClient[Litestar]) -> None:
    """Until no model of the catalog cools down any more (the cooldown ends by itself)."""

    async def none_cooling() -> bool:
        models = (await api.get("/models", headers=HEADERS)).json()["items"]
        return all(not m["cooling_down_seconds"] for m in models)

    await wait_until(none_cooling, timeout=COOLDOWN_SECONDS + 15, interval=0.2, message="a cooldown did not end")


@pytest.fixture(scope="module")
async def api(metrics_settings: Any) -> AsyncIterator[AsyncTestClient[Litestar]]:
    """A client of one app with the test catalog."""
    async with app_client(metrics_settings) as client:
        yield client


async def test_execute_measures_stores_and_publishes(
    api: AsyncTestClient[Litestar], upstream: tuple[FakeOpenAI, str], stack: EmbeddedStack
) -> None:
    fake, _ = upstream
    fake.behaviours["fast-m"] = Behaviour(answer="Paris is the capital of France.")
    response = await api.post(
        "/execute", json={"task_type": "chat", "prompt": "Capital of France?", "metadata": {"ticket": 7}},
        headers=HEADERS,
    )  # fmt: skip
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["response"] == "Paris is the capital of France."
    assert body["model"] == "fast"
    assert body["tokens"] == {"input": 3, "output": 6, "estimated": False}
    assert body["cost_usd"] == pytest.approx((3 * 1 + 6 * 2) / 1e6)
    assert body["quality"]["score"] == 1.0
    assert [a["outcome"] for a in body["attempts"]] == ["success"]
    assert body["recommendations"][0]["model"] == "fast"
    # The key went upstream in the Authorization header only.
    assert fake.requests[-1]["headers"]["authorization"] == f"Bearer {SECRET}"
    rows = await sql_rows(
        stack.urls["database_url"],
        "SELECT attempt, model_id, outcome, input_tokens, output_tokens, cost_usd, prompt, response, "
        "metrics_executions::text FROM metrics_executions WHERE execution_id = :id ORDER BY attempt",
        id=uuid.UUID(body["execution_id"]),
    )
    assert [(r[0], r[1], r[2], r[3], r[4]) for r in rows] == [
        (0, "fast", "success", 3, 6),
        (1, "fast", "success", 3, 6),
    ]
    assert (rows[0][6], rows[0][7]) == (None, None)  # prompts are not stored by default
    records = await read_topic(
        stack.urls["kafka"], "omninode_bridge_metrics_v1", expect=1,
        match=lambda r: body["execution_id"].encode() in r.value,
    )  # fmt: skip
    # The service's own verification: Python's json writes 1.5e-05 where msgspec's canonical form has 0.000015,
    # so tests/kafka_helpers.verify_envelope cannot recompute the hash of a payload with small floats.
    envelope = decode_envelope(records[0].value)
    assert envelope.event_type == "TaskExecuted"
    assert envelope.payload["model"] == "fast"
    assert envelope.payload["cost_usd"] == body["cost_usd"]
    # No secret in the response, the rows or the event.
    assert SECRET not in response.text
    assert all(SECRET not in str(r) for r in rows)
    assert SECRET.encode() not in records[0].value


async def test_failover_within_one_request_then_cooldown_then_recovery(
    api: AsyncTestClient[Litestar], upstream: tuple[FakeOpenAI, str]
) -> None:
    fake, _ = upstream
    fake.behaviours["flaky-m"] = Behaviour(status=503, error_body={"error": {"message": "overloaded"}})
    fake.behaviours["backup-m"] = Behaviour(answer="A careful analysis of the question.")
    request = {"task_type": "analysis", "prompt": "Assess this.", "strategy": "cost"}
    for _ in range(3):  # flaky is the cheapest: tried first, fails, backup answers
        response = await api.post("/execute", json=request, headers=HEADERS)
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["model"] == "backup"
        assert [(a["model"], a["outcome"]) for a in body["attempts"]] == [
            ("flaky", "server_error"), ("backup", "success"),
        ]  # fmt: skip
        assert "overloaded" in body["attempts"][0]["detail"]
    calls = fake.calls("flaky-m")
    response = await api.post("/execute", json=request, headers=HEADERS)  # flaky is cooling down now
    assert [(a["model"], a["outcome"]) for a in response.json()["attempts"]] == [
        ("backup", "success"),
        ("flaky", "cooldown"),
    ] or [a["outcome"] for a in response.json()["attempts"]] == ["cooldown", "success"]
    assert fake.calls("flaky-m") == calls
    models = (await api.get("/models", headers=HEADERS)).json()["items"]
    assert next(m for m in models if m["id"] == "flaky")["cooling_down_seconds"] > 0
    fake.behaviours["flaky-m"] = Behaviour(answer="Recovered and answering at length.")
    await _cooled_down(api)
    response = await api.post("/execute", json=request, headers=HEADERS)
    assert response.json()["model"] == "flaky"


async def test_every_model_failing_is_a_502_with_the_attempts(
    api: AsyncTestClient[Litestar], upstream: tuple[FakeOpenAI, str]
) -> None:
    fake, _ = upstream
    fake.behaviours["flaky-m"] = Behaviour(status=500)
    fake.behaviours["backup-m"] = Behaviour(status=429, error_body={"error": {"message": "slow down"}})
    response = await api.post("/execute", json={"task_type": "analysis", "prompt": "x"}, headers=HEADERS)
    assert response.status_code == 502, response.text
    problem = response.json()
    assert {a["outcome"] for a in problem["attempts"]} == {"server_error", "rate_limited"}
    listed = (await api.get("/executions", params={"outcome": "failed"}, headers=HEADERS)).json()
    assert listed["items"][0]["execution_id"] == problem["execution_id"]
    fake.behaviours["flaky-m"] = Behaviour(answer="Fine again, a long enough answer.")
    fake.behaviours["backup-m"] = Behaviour(answer="Fine again, a long enough answer.")
    await _cooled_down(api)  # let any cooldown end for the next tests


async def test_usage_missing_is_estimated_and_flagged_and_json_is_checked(
    api: AsyncTestClient[Litestar], upstream: tuple[FakeOpenAI, str]
) -> None:
    fake, _ = upstream
    fake.behaviours["fast-m"] = Behaviour(answer='{"label": "eggs"}', usage=False)
    response_format = {
        "type": "json_schema",
        "json_schema": {"name": "l", "schema": {"type": "object", "properties": {"label": {"enum": ["spam", "ham"]}}}},
    }
    response = await api.post(
        "/execute",
        json={"task_type": "classification", "messages": [{"role": "user", "content": "Classify: buy now"}],
              "response_format": response_format},
        headers=HEADERS,
    )  # fmt: skip
    body = response.json()
    assert body["tokens"]["estimated"] is True
    assert body["quality"]["score"] == 0.5
    assert body["quality"]["checks"][1] == {
        "name": "json",
        "passed": False,
        "detail": "$.label: not one of the allowed values",
    }
    assert fake.requests[-1]["body"]["response_format"] == response_format


async def test_stream_reaches_the_client_before_the_upstream_finishes(
    metrics_settings: Any, upstream: tuple[FakeOpenAI, str], stack: EmbeddedStack
) -> None:
    fake, _ = upstream
    fake.behaviours["fast-m"] = Behaviour(answer="one two three four five six seven eight", chunk_delay_s=0.3)
    events: list[tuple[str, Any, float]] = []
    async with live_server(metrics_settings) as base, httpx.AsyncClient(base_url=base, timeout=30) as http:
        request = {"task_type": "chat", "prompt": "Count.", "stream": True}
        async with http.stream("POST", "/execute", json=request, headers=HEADERS) as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            event = None
            async for line in response.aiter_lines():
                if line.startswith("event:"):
                    event = line[6:].strip()
                elif line.startswith("data:"):
                    events.append((event or "", json.loads(line[5:]), time.monotonic()))
    deltas = [e for e in events if e[0] == "delta"]
    assert len(deltas) >= 2
    assert deltas[0][2] < fake.stream_finished_at["fast-m"]  # the first chunk came before the upstream ended
    assert "".join(d[1]["text"] for d in deltas) == "one two three four five six seven eight"
    result = events[-1]
    assert result[0] == "result"
    assert 0 < result[1]["ttft_ms"] < result[1]["latency_ms"]
    assert result[1]["tokens"] == {"input": 1, "output": 8, "estimated": False}
    rows = await sql_rows(
        stack.urls["database_url"],
        "SELECT ttft_ms, output_tokens, streamed FROM metrics_executions WHERE execution_id = :id AND attempt = 0",
        id=uuid.UUID(result[1]["execution_id"]),
    )
    assert rows[0][0] > 0
    assert (rows[0][1], rows[0][2]) == (8, True)


async def test_feedback_updates_statistics_and_redis_loss_is_rebuilt(
    api: AsyncTestClient[Litestar], upstream: tuple[FakeOpenAI, str], stack: EmbeddedStack
) -> None:
    fake, _ = upstream
    fake.behaviours["fast-m"] = Behaviour(answer="ok")
    executed = await api.post("/execute", json={"task_type": "chat", "prompt": "hi"}, headers=HEADERS)
    assert executed.status_code == 200, executed.text
    body = executed.json()
    before = (await api.get("/models/fast/stats", params={"task_type": "chat"}, headers=HEADERS)).json()
    accepted = await api.post(
        f"/executions/{body['execution_id']}/feedback", json={"score": 0.0, "label": "wrong"}, headers=HEADERS
    )
    assert accepted.status_code == 200, accepted.text
    after = (await api.get("/models/fast/stats", params={"task_type": "chat"}, headers=HEADERS)).json()
    assert after["task_types"][0]["quality_samples"] == before["task_types"][0]["quality_samples"] + 1
    assert after["task_types"][0]["quality_mean"] < before["task_types"][0]["quality_mean"]
    detail = (await api.get(f"/executions/{body['execution_id']}", headers=HEADERS)).json()
    assert (detail["feedback_score"], detail["feedback_label"]) == (0.0, "wrong")
    recommended = (await api.get("/recommendations", params={"task_type": "chat"}, headers=HEADERS)).json()
    redis = Redis.from_url(stack.urls["redis_url"])
    keys = [k async for k in redis.scan_iter("metrics:stats:*")]
    assert keys
    await redis.delete(*keys)
    await redis.aclose()
    rebuilt = (await api.get("/recommendations", params={"task_type": "chat"}, headers=HEADERS)).json()
    assert rebuilt["items"][0]["samples"] == recommended["items"][0]["samples"] > 0
    assert rebuilt["items"][0]["expected_quality"] == recommended["items"][0]["expected_quality"]


async def test_a_judge_model_grades_the_answer_and_its_cost_is_recorded(
    api: AsyncTestClient[Litestar], upstream: tuple[FakeOpenAI, str], stack: EmbeddedStack
) -> None:
    fake, _ = upstream
    fake.behaviours["fast-m"] = Behaviour(answer="Forty-two, the answer.")
    fake.behaviours["judge-m"] = Behaviour(answer="0.6")
    response = await api.post("/execute", json={"task_type": "judged", "prompt": "What is six times seven?"},
                              headers=HEADERS)  # fmt: skip
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model"] == "fast"
    assert body["quality"]["score"] == pytest.approx((1 + 0.6) / 2)
    assert body["quality"]["checks"][1] == {"name": "judge:judge", "passed": True, "detail": "graded 0.6 by judge",
                                            "score": 0.6}  # fmt: skip
    (judged,) = body["quality"]["judges"]
    assert (judged["model"], judged["score"]) == ("judge", 0.6)
    assert judged["latency_ms"] > 0
    assert judged["cost_usd"] > 0
    answer_cost = (body["tokens"]["input"] * 1 + body["tokens"]["output"] * 2) / 1e6
    assert body["cost_usd"] == pytest.approx(answer_cost + judged["cost_usd"])
    asked = fake.requests[-1]["body"]
    assert asked["model"] == "judge-m"
    assert "What is six times seven?" in asked["messages"][1]["content"]
    assert "Forty-two, the answer." in asked["messages"][1]["content"]
    rows = await sql_rows(
        stack.urls["database_url"],
        "SELECT cost_usd, quality_checks, metadata FROM metrics_executions WHERE execution_id = :id AND attempt = 0",
        id=uuid.UUID(body["execution_id"]),
    )
    assert rows[0][0] == pytest.approx(body["cost_usd"])
    assert rows[0][1][1]["score"] == 0.6
    assert rows[0][2]["judges"][0]["model"] == "judge"
    fake.behaviours["judge-m"] = Behaviour(answer="I cannot tell.")
    unsure = (await api.post("/execute", json={"task_type": "judged", "prompt": "Again?"}, headers=HEADERS)).json()
    assert unsure["quality"]["score"] == 1.0  # a judge without a grade does not count against the answer
    assert "not counted" in unsure["quality"]["checks"][1]["detail"]


async def test_refusals(api: AsyncTestClient[Litestar]) -> None:
    unknown = await api.post("/execute", json={"task_type": "poetry", "prompt": "x"}, headers=HEADERS)
    assert unknown.status_code == 422
    both = await api.post(
        "/execute", json={"task_type": "chat", "prompt": "x", "messages": [{"role": "user", "content": "y"}]},
        headers=HEADERS,
    )  # fmt: skip
    assert both.status_code == 422
    wrong_model = await api.post("/execute", json={"task_type": "chat", "prompt": "x", "model": "backup"},
                                 headers=HEADERS)  # fmt: skip
    assert wrong_model.status_code == 422
    assert (await api.get("/models/nope/stats", headers=HEADERS)).status_code == 404
    assert (await api.post("/execute", json={"task_type": "chat", "prompt": "x"})).status_code == 401


async def test_budget_exceeded_sends_nothing_upstream(
    stack: EmbeddedStack, upstream: tuple[FakeOpenAI, str], tmp_path: Path
) -> None:
    fake, base_url = upstream
    path = tmp_path / "models.yaml"
    path.write_text(
        f"task_types: {{chat: {{}}}}\nmodels:\n  - {{id: pricey, base_url: '{base_url}', model: pricey-m, "
        "task_types: [chat], price: {input_per_million: 100000, output_per_million: 100000}}\n"
    )
    settings = make_settings(stack, metrics={"models_file": str(path), "daily_budget_usd": 0.5})
    async with app_client(settings) as client:
        first = await client.post("/execute", json={"task_type": "chat", "prompt": "a b c"}, headers=HEADERS)
        assert first.status_code == 200, first.text
        calls = fake.calls("pricey-m")
        refused = await client.post("/execute", json={"task_type": "chat", "prompt": "again"}, headers=HEADERS)
        assert refused.status_code == 429
        assert refused.headers["content-type"].startswith("application/problem+json")
        assert "budget is $0.500000 per day" in refused.json()["detail"]
        assert refused.json()["budget_usd"] == 0.5
        assert fake.calls("pricey-m") == calls


async def test_empty_catalog_answers_503(stack: EmbeddedStack) -> None:
    async with app_client(make_settings(stack)) as client:  # the repository's catalog ships empty
        response = await client.post("/execute", json={"task_type": "chat", "prompt": "x"}, headers=HEADERS)
        assert response.status_code == 503
        assert response.json()["detail"] == "No model configured for task type chat."
        assert (await client.get("/models", headers=HEADERS)).json() == {"items": []}
        health = await client.get("/health")
        assert health.status_code == 200
        assert health.json()["status"] == "healthy"  # the service is; the metrics component is not
        assert health.json()["components"]["metrics"] == {
            "status": "degraded",
            "latency_ms": health.json()["components"]["metrics"]["latency_ms"],
            "detail": "the model catalog is empty: POST /execute answers 503",
        }


async def test_health_degraded_while_every_model_cools_down(
    api: AsyncTestClient[Litestar], stack: EmbeddedStack
) -> None:
    assert (await api.get("/health")).json()["components"]["metrics"]["status"] == "up"
    redis = Redis.from_url(stack.urls["redis_url"])
    keys = [f"metrics:cooldown:{m}" for m in ("fast", "flaky", "backup", "judge")]
    try:
        for key in keys:
            await redis.set(key, "1", px=60_000)
        body = (await api.get("/health")).json()
        assert body["status"] == "healthy"
        assert body["components"]["metrics"]["status"] == "degraded"
        assert body["components"]["metrics"]["detail"] == "every model is cooling down after failures"
        await redis.delete(keys[0])
        partly = (await api.get("/health")).json()["components"]["metrics"]
        assert partly == {"status": "up", "latency_ms": partly["latency_ms"], "detail": "3 of 4 models cooling down"}
    finally:
        await redis.delete(*keys)
        await redis.aclose()
