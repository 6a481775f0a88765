"""``omninode-bridge execute`` and ``models list|stats`` against a live app and the fake model server."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from typing import Any

import pytest

from omninode_bridge.embedded import EmbeddedStack
from tests.integration.conftest import ADMIN_KEY, live_server, make_settings
from tests.integration.metrics.fake_openai import Behaviour, serve_fake_openai

pytestmark = pytest.mark.slow  # runs the CLI in processes of its own (first in `make test`)

CLI = str(Path(sys.executable).parent / "omninode-bridge")


async def _run(*args: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        CLI, *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "OMNINODE_API_KEY": ADMIN_KEY, "COLUMNS": "200"},
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), timeout=120)
    return process.returncode or 0, out.decode(), err.decode()


async def test_execute_streams_then_prints_the_measurements(stack: EmbeddedStack, tmp_path: Path) -> None:
    async with serve_fake_openai() as (fake, base_url):
        fake.behaviours["cli-m"] = Behaviour(answer="Streaming answers arrive in pieces.", chunks=5)
        catalog = tmp_path / "models.yaml"
        catalog.write_text(
            "task_types:\n  chat: {checks: [{kind: non_empty}]}\nmodels:\n"
            f"  - {{id: cli-model, base_url: '{base_url}', model: cli-m, task_types: [chat],"
            " price: {input_per_million: 1, output_per_million: 2}}\n"
        )
        settings: Any = make_settings(stack, metrics={"models_file": str(catalog)})
        async with live_server(settings) as base:
            code, out, err = await _run("execute", "--task-type", "chat", "Say something", "--url", base)
            assert code == 0, err
            assert out == "Streaming answers arrive in pieces.\n"
            assert "model     cli-model" in err
            assert "quality   1.00 non_empty:ok" in err
            assert "tokens    2 in, 5 out" in err
            assert "first token" in err

            code, out, err = await _run("models", "list", "--url", base)
            assert code == 0, err
            assert "cli-model" in out
            assert "ready" in out
            assert "100% of 1" in out

            code, out, err = await _run("models", "stats", "cli-model", "--url", base)
            assert code == 0, err
            assert "chat" in out
            assert "100%" in out

            code, out, err = await _run("execute", "--task-type", "nope", "x", "--url", base)
            assert code == 1
            assert "error: 422" in err
            assert "unknown task type" in err
