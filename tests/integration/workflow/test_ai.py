"""AI tasks go through the metrics module (routed, measured, stored) and their outcome is fed back."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omninode_bridge.embedded import EmbeddedStack
from tests.integration.conftest import ADMIN_KEY, app_client, make_settings, sql_rows, wait_until
from tests.integration.metrics.fake_openai import Behaviour, serve_fake_openai

HEADERS = {"X-API-Key": ADMIN_KEY}


def _catalog(base_url: str) -> str:
    return f"""
task_types:
  summary: {{checks: [{{kind: non_empty}}]}}
models:
  - {{id: small, base_url: '{base_url}', model: small-m, task_types: [summary],
     price: {{input_per_million: 1, output_per_million: 2}}}}
"""


async def test_ai_task_runs_through_the_metrics_executor_and_gets_feedback(own_stack: EmbeddedStack,
                                                                          tmp_path: Path) -> None:  # fmt: skip
    # Its own database: the session's app has no model catalog and would fail these tasks if it claimed them.
    async with serve_fake_openai() as (fake, url):
        fake.behaviours["small-m"] = Behaviour(answer="A short summary.")
        catalog = tmp_path / "models.yaml"
        catalog.write_text(_catalog(url))
        settings = make_settings(own_stack, metrics={"models_file": str(catalog)})
        body: dict[str, Any] = {"name": "summarise", "inputs": {"text": "Long text about workflows."}, "tasks": [
            {"id": "sum", "kind": "ai", "params": {"task_type": "summary", "prompt": "Summarise: {{ inputs.text }}"}},
            {"id": "use", "kind": "noop", "depends_on": ["sum"],
             "params": {"summary": "{{ tasks.sum.output.response }}"}},
        ]}  # fmt: skip
        async with app_client(settings) as client:
            response = await client.post("/workflows?wait=20", json=body, headers=HEADERS)
            assert response.status_code == 200, response.text
            run = response.json()
            tasks = {t["task_id"]: t for t in run["tasks"]}
            assert run["status"] == "completed", run
            assert tasks["use"]["output"] == {"summary": "A short summary."}
            assert tasks["sum"]["output"]["model"] == "small"
            prompt = fake.requests[-1]["body"]["messages"][0]["content"]
            assert prompt == "Summarise: Long text about workflows."
            execution = tasks["sum"]["output"]["execution_id"]
            database = own_stack.urls["database_url"]

            async def fed_back() -> bool:
                rows = await sql_rows(database, "SELECT feedback_score FROM metrics_executions "
                                      "WHERE execution_id::text = :e AND attempt = 0", e=execution)  # fmt: skip
                return bool(rows) and rows[0][0] == 1.0

            await wait_until(fed_back, timeout=10)
