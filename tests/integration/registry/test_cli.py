"""``omninode-bridge registry`` against a live app: register from a file, list, show, search tools, deregister."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path

from typer.testing import CliRunner

from omninode_bridge.cli import app
from omninode_bridge.settings import Settings
from tests.integration.conftest import ADMIN_KEY, live_server


async def _cli(url: str, *args: str) -> tuple[int, str]:
    """Run the command in a thread (its HTTP calls are blocking; the server runs in this event loop)."""
    result = await asyncio.to_thread(
        CliRunner().invoke, app, ["registry", *args, "--url", url, "--api-key", ADMIN_KEY], catch_exceptions=False
    )
    return result.exit_code, result.output


async def test_registry_commands(settings: Settings, tmp_path: Path) -> None:
    node_id = f"cli-{uuid.uuid4().hex[:8]}"
    tool = f"frobnicate_{uuid.uuid4().hex[:6]}"
    file = tmp_path / "node.yaml"
    file.write_text(
        f"node_id: {node_id}\nname: cli-svc-{node_id}\nnode_type: compute\nversion: 1.4.0\naddress: 127.0.0.1\n"
        f"port: 9\ncapabilities: [{{name: stamping, version: 1.4.0}}]\n"
        f"tools: [{{name: {tool}, description: Frobnicates the quarterly widgets}}]\n"
    )
    async with live_server(settings) as url:
        code, out = await _cli(url, "register", str(file))
        assert code == 0, out
        assert json.loads(out[out.index("{") :])["node_id"] == node_id
        code, out = await _cli(url, "list", "--name", f"cli-svc-{node_id}", "--json")
        assert code == 0, out
        assert [n["node_id"] for n in json.loads(out)] == [node_id]
        code, out = await _cli(url, "list", "--capability", "stamping", "--version", "^1.2")
        assert code == 0, out
        assert node_id in out
        code, out = await _cli(url, "show", node_id)
        assert code == 0, out
        assert json.loads(out)["version"] == "1.4.0"
        code, out = await _cli(url, "tools", "quarterly widgets", "--json")
        assert code == 0, out
        assert tool in [t["name"] for t in json.loads(out)]
        code, out = await _cli(url, "deregister", node_id)
        assert code == 0, out
        code, out = await _cli(url, "show", node_id)
        assert code == 1
        assert "404" in out
