"""``omninode-bridge workflow submit --wait`` on an example: exit 0 and the results printed."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

import pytest

from omninode_bridge.settings import Settings
from tests.integration.conftest import ADMIN_KEY, live_server

EXAMPLES = Path(__file__).resolve().parents[3] / "examples" / "workflows"


pytestmark = pytest.mark.slow  # runs the CLI in processes of its own (first in `make test`)


async def _cli(url: str, *args: str) -> tuple[int, str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OMNINODE_")}
    env.update(OMNINODE_URL=url, OMNINODE_API_KEY=ADMIN_KEY)
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "omninode_bridge.cli", "workflow", *args, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), timeout=120)
    return process.returncode or 0, out.decode(), err.decode()


async def test_submit_wait_on_an_example_exits_0_with_the_results(settings: Settings) -> None:
    async with live_server(settings) as url:
        code, out, err = await _cli(url, "submit", str(EXAMPLES / "diamond.yaml"), "--input", "who=ada", "--wait")
        assert code == 0, err
        result = json.loads(out)
        assert result["status"] == "completed"
        assert result["outputs"]["join"] == {"said": "hello ada", "rows": 3}
        code, out, err = await _cli(url, "submit", str(EXAMPLES / "saga.yaml"), "--wait")
        assert code == 1, err
        assert json.loads(out)["outcome"] == "compensated"
        code, out, _ = await _cli(url, "list", "--limit", "2")
        assert code == 0
        assert len(out.strip().splitlines()) == 2
