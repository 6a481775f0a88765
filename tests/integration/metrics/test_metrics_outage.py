"""Kafka down during executions: every metrics event arrives afterwards (the outbox). Stored prompts are
redacted, and the upstream API key appears in no log line, row, event or response."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from omninode_bridge.core.events import decode_envelope
from omninode_bridge.embedded import EmbeddedStack
from tests.integration.conftest import ADMIN_KEY, app_client, make_settings, sql_rows
from tests.integration.metrics.fake_openai import Behaviour, serve_fake_openai
from tests.support.kafka_helpers import read_topic

HEADERS = {"X-API-Key": ADMIN_KEY}
UPSTREAM_KEY = "sk-outage-upstream-key-9f8e7d6c5b4a39281706"
#: A secret a caller pasted into a prompt (an OpenAI-shaped key): stored only redacted.
PROMPT_SECRET = "sk-proj-Zq8Xw2Vt6Rp0Nm4Lk9Jh3Gf7Dd1Sa5Qe"


async def test_events_of_executions_while_kafka_is_down_arrive_afterwards(
    own_stack: EmbeddedStack, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    stack = own_stack
    assert stack.kafka is not None
    async with serve_fake_openai() as (fake, base_url):
        fake.behaviours["outage-m"] = Behaviour(answer="Measured while the broker was away.")
        catalog = tmp_path / "models.yaml"
        catalog.write_text(
            "task_types:\n  chat: {checks: [{kind: non_empty}]}\nmodels:\n"
            f"  - {{id: outage, base_url: '{base_url}', model: outage-m, task_types: [chat],"
            " api_key_env: METRICS_OUTAGE_KEY, price: {input_per_million: 1, output_per_million: 2}}\n"
        )
        os.environ["METRICS_OUTAGE_KEY"] = UPSTREAM_KEY
        settings: Any = make_settings(
            stack, metrics={"models_file": str(catalog), "store_prompts": True},
            observability={"log_level": "DEBUG"},
        )  # fmt: skip
        async with app_client(settings) as client:
            stack.kafka.stop()
            ids: list[str] = []
            try:
                for i in range(12):
                    response = await client.post(
                        "/execute", headers=HEADERS,
                        json={"task_type": "chat", "prompt": f"Question {i}; my key is {PROMPT_SECRET}"},
                    )  # fmt: skip
                    assert response.status_code == 200, response.text
                    assert UPSTREAM_KEY not in response.text
                    ids.append(response.json()["execution_id"])
            finally:
                stack.kafka.start()  # same port, empty broker: the relay recreates the topics
            records = await read_topic(
                stack.urls["kafka"], "omninode_bridge_metrics_v1", expect=12, timeout=180,
                match=lambda r: any(i.encode() in r.value for i in ids),
            )  # fmt: skip
            assert {decode_envelope(r.value).payload["execution_id"] for r in records} == set(ids)
            assert all(UPSTREAM_KEY.encode() not in r.value for r in records)
            detail = (await client.get(f"/executions/{ids[0]}", headers=HEADERS)).json()
            stored = str(detail["prompt"])
            assert "Question 0" in stored  # the prompt is stored ...
            assert PROMPT_SECRET not in stored  # ... with the secret redacted
            assert PROMPT_SECRET not in str(detail)
            assert detail["response"] == "Measured while the broker was away."
            rows = await sql_rows(
                stack.urls["database_url"],
                "SELECT prompt::text, response, metadata::text FROM metrics_executions WHERE attempt = 0",
            )
            assert len(rows) == 12
            assert all(PROMPT_SECRET not in str(r) and UPSTREAM_KEY not in str(r) for r in rows)
        assert fake.requests[-1]["headers"]["authorization"] == f"Bearer {UPSTREAM_KEY}"  # it was sent upstream
    logs = capfd.readouterr()
    assert logs.out or logs.err  # DEBUG logging wrote something to grep
    assert UPSTREAM_KEY not in logs.out
    assert UPSTREAM_KEY not in logs.err
