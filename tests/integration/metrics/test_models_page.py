"""The models page: its JSON over the stored executions, and the charts drawn by the page in headless Chromium."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.async_api import async_playwright

from omninode_bridge.embedded import EmbeddedStack
from tests.integration.conftest import ADMIN_KEY, live_server, make_settings
from tests.integration.metrics.fake_openai import Behaviour, serve_fake_openai

HEADERS = {"X-API-Key": ADMIN_KEY}
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip


def _catalog(base_url: str) -> str:
    # A task type of this file only: the session's database holds other tests' executions too.
    return f"""
task_types:
  page_check: {{checks: [{{kind: non_empty}}, {{kind: min_length, value: 20}}]}}
models:
  - {{id: page-good, base_url: '{base_url}', model: good-m, task_types: [page_check],
     price: {{input_per_million: 1, output_per_million: 1}}}}
  - {{id: page-poor, base_url: '{base_url}', model: poor-m, task_types: [page_check],
     price: {{input_per_million: 1, output_per_million: 1}}}}
"""


async def test_models_page_charts_quality_latency_cost_and_share(stack: EmbeddedStack, tmp_path: Path) -> None:
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: `make test` installs Debian's chromium package (apt-get, as root)")
    async with serve_fake_openai() as (fake, base_url):
        fake.behaviours["good-m"] = Behaviour(answer="A long and complete answer to the question.")
        fake.behaviours["poor-m"] = Behaviour(answer="short")
        path = tmp_path / "models.yaml"
        path.write_text(_catalog(base_url))
        settings = make_settings(stack, metrics={"models_file": str(path), "exploration": "none"})
        async with live_server(settings) as base, httpx.AsyncClient(base_url=base, timeout=30) as http:
            for model in ("page-good", "page-good", "page-good", "page-poor"):
                response = await http.post("/execute", json={"task_type": "page_check", "prompt": "Explain.",
                                                             "model": model}, headers=HEADERS)  # fmt: skip
                assert response.status_code == 200, response.text
            data = (await http.get("/models-dashboard/data", params={"task_type": "page_check", "strategy": "quality"},
                                   headers=HEADERS)).json()  # fmt: skip
            (task,) = data["task_types"]
            assert task["executions"] == 4
            assert task["recommended"] == "page-good"  # quality 1.0 against 0.5
            models: dict[str, Any] = {m["model"]: m for m in task["models"]}
            assert (models["page-good"]["share"], models["page-poor"]["share"]) == (0.75, 0.25)
            (point,) = models["page-poor"]["points"]  # all in the last bucket
            assert point["quality_mean"] == 0.5
            assert point["cost_mean_usd"] > 0
            assert point["latency_mean_ms"] > 0
            assert (await http.get("/models-dashboard/data")).status_code == 401
            unknown = await http.get("/models-dashboard/data", params={"task_type": "nope"}, headers=HEADERS)
            assert unknown.status_code == 422
            page = await http.get("/models-dashboard")
            assert page.status_code == 200
            assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
            async with async_playwright() as playwright:
                browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                try:
                    tab = await browser.new_page()
                    errors: list[str] = []
                    tab.on("pageerror", lambda exc: errors.append(str(exc)))
                    await tab.goto(f"{base}/models-dashboard?task_type=page_check&strategy=quality#key={ADMIN_KEY}")
                    section = tab.locator('section[data-task-type="page_check"]')
                    await section.wait_for(timeout=10_000)
                    assert ADMIN_KEY not in tab.url, "the key must leave the address bar"
                    for chart in ("quality", "latency", "cost", "share"):
                        for model in ("page-good", "page-poor"):
                            line = section.locator(f'svg[data-chart="{chart}"] path[data-model="{model}"]')
                            assert await line.count() == 1, (chart, model)
                    assert "page-good" in await section.locator(".recommended b").inner_text()
                    assert "75%" in await section.locator('.legend [data-model="page-good"]').inner_text()
                    assert errors == []
                finally:
                    await browser.close()
