"""A model's concurrency limit is shared through Redis by every app (process) and every slot comes back, on the
one-model path where ``prepare`` takes the slot with the routing read, including a request refused after it."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
from redis.asyncio import Redis

from omninode_bridge.embedded import EmbeddedStack
from tests.integration.conftest import ADMIN_KEY, live_server, make_settings
from tests.integration.metrics.fake_openai import Behaviour, serve_fake_openai

HEADERS = {"X-API-Key": ADMIN_KEY}


async def test_the_limit_holds_across_apps_and_every_slot_comes_back(stack: EmbeddedStack, tmp_path: Path) -> None:
    async with serve_fake_openai() as (fake, base_url):
        fake.behaviours["solo-m"] = Behaviour(latency_s=0.6)
        path = tmp_path / "models.yaml"
        path.write_text(
            f"task_types: {{chat: {{}}}}\nmodels:\n  - {{id: solo, base_url: '{base_url}', model: solo-m, "
            "task_types: [chat], max_concurrency: 1, price: {input_per_million: 1, output_per_million: 1}}\n"
        )
        # A budget, so the one-model start also reads the key's spend.
        settings = make_settings(stack, metrics={"models_file": str(path), "daily_budget_usd": 100.0})
        redis = Redis.from_url(stack.urls["redis_url"])
        # Served (in this loop), not through the test client: its requests block the loop until they finish.
        async with (
            live_server(settings) as url_one,
            live_server(settings) as url_other,
            httpx.AsyncClient(base_url=url_one, timeout=30) as one,
            httpx.AsyncClient(base_url=url_other, timeout=30) as other,
        ):
            body = {"task_type": "chat", "prompt": "hello"}
            first = asyncio.create_task(one.post("/execute", json=body, headers=HEADERS))
            deadline = time.monotonic() + 10
            while fake.calls("solo-m") < 1:  # the first holds the only slot, upstream
                assert time.monotonic() < deadline, "the first call never reached the model"
                await asyncio.sleep(0.01)
            busy = await other.post("/execute", json=body, headers=HEADERS)
            assert busy.status_code == 503, busy.text
            assert [a["outcome"] for a in busy.json()["attempts"]] == ["at_capacity"]
            assert fake.calls("solo-m") == 1  # nothing sent for the refused one
            assert (await first).status_code == 200
            # Every slot was given back: the answered one, the refused one (it took none), and one of a
            # request refused after its slot was taken (a constraint no model meets).
            strict = {**body, "constraints": {"max_cost_usd": 1e-12}}
            assert (await other.post("/execute", json=strict, headers=HEADERS)).status_code == 503
            assert await redis.zcard("metrics:inflight:solo") == 0
            again = await other.post("/execute", json={**body, "model": "solo"}, headers=HEADERS)
            assert again.status_code == 200, again.text
            assert await redis.zcard("metrics:inflight:solo") == 0
        await redis.aclose()
