"""Alembic entry points used by the CLI, the dev stack and the test fixtures."""

from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path

from alembic import command
from alembic.config import Config

__all__ = ["alembic_config", "import_all_models", "upgrade"]

_ROOT = Path(__file__).resolve().parents[2]


def import_all_models() -> None:
    """Import the platform's and every module's ``models`` so their tables join the metadata."""
    importlib.import_module("omninode_bridge.core.events.models")
    importlib.import_module("omninode_bridge.core.steps.models")
    importlib.import_module("omninode_bridge.platform.models")
    import omninode_bridge.modules as modules

    for info in pkgutil.iter_modules(modules.__path__):
        if info.ispkg:
            try:
                importlib.import_module(f"omninode_bridge.modules.{info.name}.models")
            except ModuleNotFoundError as exc:
                if exc.name != f"omninode_bridge.modules.{info.name}.models":
                    raise


def alembic_config(database_url: str) -> Config:
    """An Alembic config for ``database_url``, with the repository's ``alembic/`` scripts."""
    ini = _ROOT / "alembic.ini"
    config = Config(str(ini)) if ini.exists() else Config()
    config.set_main_option("script_location", str(_ROOT / "alembic"))
    config.attributes["database_url"] = database_url
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    """Run ``alembic upgrade`` to ``revision``."""
    command.upgrade(alembic_config(database_url), revision)
