"""Issue 11 defects 9, 16 and 17: the CLI (verify by path, finding `dev`, manifest, wording) and the dev key."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sys
import uuid
from pathlib import Path

import pytest

from omninode_bridge.cli._stamp import MANIFEST_NAME
from omninode_bridge.embedded import EmbeddedStack, recorded_state_dir, state_pointer
from omninode_bridge.platform import parse_key_specs
from omninode_bridge.settings import Settings
from tests.integration.conftest import ADMIN_KEY, app_client, live_server, make_settings

pytestmark = pytest.mark.slow  # runs the CLI in processes of its own (first in `make test`)

CLI = str(Path(sys.executable).parent / "omninode-bridge")


def _env(**extra: str) -> dict[str, str]:
    """The environment without any OMNINODE_ variable (so nothing points the CLI at a stack)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OMNINODE_")}
    return {**env, "COLUMNS": "200", **extra}


async def _cli(*args: str, cwd: Path, env: dict[str, str]) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        CLI, *args, cwd=cwd, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    output, _ = await asyncio.wait_for(process.communicate(), timeout=120)
    return process.returncode or 0, output.decode()


def _keyed(url: str) -> dict[str, str]:
    return _env(OMNINODE_URL=url, OMNINODE_API_KEY=ADMIN_KEY)


async def test_d09_verify_reports_a_copy_of_a_stamped_file_as_misplaced(settings: Settings, tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    for package in ("a", "b"):
        (tree / package).mkdir(parents=True)
        (tree / package / "__init__.py").write_text("# a package\n")  # identical files, stamped together
    (tree / "settings.py").write_text("DEBUG = False\n")
    (tree / "embedded.py").write_text("SERVERS = 3\n")
    namespace = f"d09-{uuid.uuid4().hex[:8]}"
    async with live_server(settings) as base:
        code, output = await _cli("stamp", str(tree), "-n", namespace, cwd=tmp_path, env=_keyed(base))
        assert code == 0, output
        code, output = await _cli("stamp", str(tree), "-n", namespace, "--verify", cwd=tmp_path, env=_keyed(base))
        assert code == 0, output
        assert "Verified 4 of 4 files" in output

        shutil.copyfile(tree / "settings.py", tree / "embedded.py")  # cp settings.py embedded.py
        code, output = await _cli("stamp", str(tree), "-n", namespace, "--verify", cwd=tmp_path, env=_keyed(base))
    assert code == 1, output
    assert "Verified 3 of 4 files; 1 misplaced" in output
    assert "misplaced embedded.py: this content's stamp belongs to settings.py" in output


async def test_d16_stamp_writes_the_manifest_by_default_and_counts_what_verified(
    settings: Settings, tmp_path: Path
) -> None:
    tree = tmp_path / "tree"
    tree.mkdir()
    for index in range(3):
        (tree / f"f{index}.txt").write_text(f"file {index}\n")
    namespace = f"d16-{uuid.uuid4().hex[:8]}"
    async with live_server(settings) as base:
        code, output = await _cli("stamp", str(tree), "-n", namespace, cwd=tmp_path, env=_keyed(base))
        assert code == 0, output
        assert "Stamped 3 of 3 files" in output
        manifest = json.loads((tree / MANIFEST_NAME).read_text())
        assert manifest["mode"] == "stamp"
        assert manifest["summary"] == {"created": 3}

        code, output = await _cli("stamp", str(tree), "-n", namespace, cwd=tmp_path, env=_keyed(base))
        assert code == 0, output  # the manifest itself is never stamped
        assert json.loads((tree / MANIFEST_NAME).read_text())["summary"] == {"existing": 3}

        (tree / "f1.txt").write_text("changed\n")
        code, output = await _cli("stamp", str(tree), "-n", namespace, "--verify", cwd=tmp_path, env=_keyed(base))
    assert code == 1
    assert "Verified 2 of 3 files; 1 missing" in output
    assert json.loads((tree / MANIFEST_NAME).read_text())["mode"] == "stamp", "--verify keeps the stamp manifest"


async def test_d16_cli_finds_the_running_dev_stack_from_any_directory(
    stack: EmbeddedStack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    # A `dev` state directory somewhere else: its key is the one the API accepts; `dev` records it per user.
    dev_state = EmbeddedStack(tmp_path / "repo" / ".omninode", postgres=False, redis=False, kafka=False)
    settings = make_settings(stack, security={"api_keys": f"development:{dev_state.dev_api_key}:admin"})
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "notes.txt").write_text("stamped from another directory\n")
    env = _env(XDG_STATE_HOME=str(tmp_path / "xdg"))
    async with live_server(settings) as base:
        code, output = await _cli("stamp", "notes.txt", "-n", "d16", cwd=elsewhere, env=env)
        assert code == 2
        assert "no API key" in output
        dev_state.start(api_url=base)
        try:
            assert recorded_state_dir() == dev_state.state_dir
            code, output = await _cli("stamp", "notes.txt", "-n", "d16", cwd=elsewhere, env=env)
            assert code == 0, output
            assert "Stamped 1 of 1 file" in output
            assert (elsewhere / MANIFEST_NAME).is_file()  # files named directly: manifest in the cwd
        finally:
            dev_state.stop()
    assert not state_pointer().exists(), "stopping dev forgets the per-user record"


async def test_d16_bare_api_key_is_accepted_at_start_up(stack: EmbeddedStack) -> None:
    bare = "onb_bare_key_0123456789abcdef"
    [spec] = parse_key_specs(f" {bare} ")
    assert spec.key == bare
    assert spec.scopes == ("admin",)
    assert spec.name.startswith("key-")
    assert bare not in spec.name
    assert parse_key_specs(bare)[0].name == spec.name  # stable: re-seeding finds the same key
    with pytest.raises(ValueError, match="entry 1") as excinfo:
        parse_key_specs("tooshort")
    assert "tooshort" not in str(excinfo.value)

    settings = make_settings(stack, security={"api_keys": bare})
    async with app_client(settings) as client:
        listed = await client.get("/admin/api-keys", headers={"X-API-Key": bare})
        assert listed.status_code == 200, listed.text
        assert spec.name in {key["name"] for key in listed.json()}
