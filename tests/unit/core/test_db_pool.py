"""The database pool's exhaustion warning, without a database (the engine connects only when used)."""

from __future__ import annotations

from typing import Any

import pytest

from omninode_bridge.core import db as db_module
from omninode_bridge.settings import Settings


def test_pool_exhaustion_is_warned_once_a_minute_not_per_checkout(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    warnings: list[dict[str, Any]] = []

    class Recorder:
        def warning(self, event: str, **fields: Any) -> None:
            warnings.append({"event": event, **fields})

    database = db_module.Database(settings.database)  # the engine does not connect until first used
    monkeypatch.setattr(db_module, "log", Recorder())
    usage = iter([(35, 36), (20, 36), (35, 36)] * 100)  # hovering around the threshold under load
    monkeypatch.setattr(database, "pool_usage", lambda: next(usage))
    for _ in range(300):
        database._on_checkout()
    assert warnings == [{"event": "database pool nearly exhausted", "in_use": 35, "capacity": 36}]
