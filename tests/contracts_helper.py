"""Copies of the contracts with changed values, to show that the contracts drive behaviour."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from omninode_bridge.core.events.catalog import default_contracts_dir


def contracts_copy(tmp_path: Path, edit: Callable[[dict[str, Any]], None]) -> Path:
    """Copy ``contracts/`` to ``tmp_path`` and apply ``edit`` to the parsed topic catalog."""
    target = tmp_path / "contracts"
    shutil.copytree(default_contracts_dir(), target)
    catalog = yaml.safe_load((target / "topics.yaml").read_text())
    edit(catalog)
    (target / "topics.yaml").write_text(yaml.safe_dump(catalog, sort_keys=False))
    return target
