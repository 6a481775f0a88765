"""Copies of the contracts with changed values, to show that the contracts drive behaviour."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from omninode_bridge.core.events.catalog import default_contracts_dir


def contracts_copy(tmp_path: Path, edit: Callable[[dict[str, Any]], None], file: str = "topics.yaml") -> Path:
    """Copy ``contracts/`` to ``tmp_path`` and apply ``edit`` to one parsed file (the topic catalog by default).

    Calling it again with the same ``tmp_path`` edits the existing copy, so several files can be changed.
    """
    target = tmp_path / "contracts"
    if not target.exists():
        shutil.copytree(default_contracts_dir(), target)
    document = yaml.safe_load((target / file).read_text())
    edit(document)
    (target / file).write_text(yaml.safe_dump(document, sort_keys=False))
    return target
