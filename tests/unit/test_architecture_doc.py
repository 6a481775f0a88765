"""docs/architecture.md's table of files per module is the tree's (the page is the template's source of truth)."""

from __future__ import annotations

import re
from pathlib import Path

from tests.support import REPO_ROOT

MODULES_DIR = REPO_ROOT / "src" / "omninode_bridge" / "modules"
ROW = re.compile(r"^\| `(?P<module>[a-z_]+)` \| (?P<files>`[^|]+) \|$")


def _documented() -> dict[str, set[str]]:
    text = (REPO_ROOT / "docs" / "architecture.md").read_text()
    table = text[text.index("| Module | Files |") :]
    rows = {}
    for line in table.splitlines()[2:]:
        match = ROW.match(line)
        if match is None:
            break
        rows[match["module"]] = {name.strip("`/") for name in re.findall(r"`[^`]+`", match["files"])}
    return rows


def _on_disk(module: Path) -> set[str]:
    return {
        path.stem if path.suffix == ".py" else path.name
        for path in module.iterdir()
        if path.name != "__pycache__" and (path.suffix == ".py" or path.is_dir())
    }


def test_every_module_is_documented_with_exactly_its_files() -> None:
    documented = _documented()
    modules = {p.name for p in MODULES_DIR.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert set(documented) == modules
    for name in modules:
        assert documented[name] == _on_disk(MODULES_DIR / name), name
