"""``omninode-bridge stamp``: a directory tree stamped and verified through a live API."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import uuid
from pathlib import Path

import pytest

from omninode_bridge.settings import Settings
from tests.integration.conftest import ADMIN_KEY, live_server

pytestmark = pytest.mark.slow  # runs the CLI in processes of its own (first in `make test`)

CLI = str(Path(sys.executable).parent / "omninode-bridge")


async def _run(*args: str) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        CLI, "stamp", *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, "OMNINODE_API_KEY": ADMIN_KEY, "COLUMNS": "200"},
    )  # fmt: skip
    output, _ = await asyncio.wait_for(process.communicate(), timeout=120)
    return process.returncode or 0, output.decode()


async def test_stamp_a_tree_then_verify_it(settings: Settings, tmp_path: Path) -> None:
    tree = tmp_path / "project"
    (tree / "src" / "pkg").mkdir(parents=True)
    (tree / ".git").mkdir()
    (tree / "src" / "pkg" / "main.py").write_text("print('main')\n")
    (tree / "README.md").write_text("# Project\n")
    (tree / "notes.txt").write_text("remember\n")
    (tree / "logo.png").write_bytes(b"\x89PNG\r\n\x1a\n" + os.urandom(4096))
    (tree / ".git" / "config").write_text("[core]\n")  # hidden: skipped
    namespace = f"cli-{uuid.uuid4().hex[:8]}"
    manifest = tmp_path / "manifest.json"

    async with live_server(settings) as base:
        code, output = await _run(str(tree), "--namespace", namespace, "--url", base, "--manifest", str(manifest),
                                  "--concurrency", "3")  # fmt: skip
        assert code == 0, output
        document = json.loads(manifest.read_text())
        assert document["summary"] == {"created": 4}
        assert sorted(f["path"] for f in document["files"]) == ["README.md", "logo.png", "notes.txt", "src/pkg/main.py"]
        types = {f["path"]: f["content_type"] for f in document["files"]}
        assert types["logo.png"] == "image/png"
        assert types["src/pkg/main.py"] == "text/x-python"

        code, output = await _run(str(tree), "--namespace", namespace, "--url", base, "--write")
        assert code == 0, output
        assert "existing" in output
        assert (tree / "src" / "pkg" / "main.py").read_text().startswith("# ---BEGIN ONEX STAMP---\n")

        code, output = await _run(str(tree), "--namespace", namespace, "--url", base, "--verify",
                                  "--manifest", str(manifest))  # fmt: skip
        assert code == 0, output
        assert json.loads(manifest.read_text())["summary"] == {"verified": 4}

        (tree / "notes.txt").write_text("remember!\n")  # changed after stamping
        code, output = await _run(str(tree), "--namespace", namespace, "--url", base, "--verify")
        assert code == 1
        assert "missing" in output
        assert "notes.txt" in output
