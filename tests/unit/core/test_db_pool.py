"""The database pool's checkout rules (exhaustion warning, idle ping), without a database (the engine connects
only when used)."""

from __future__ import annotations

import time
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy.exc import DisconnectionError

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
    record = SimpleNamespace(info={})
    for _ in range(300):
        database._on_checkout(None, record)
    assert warnings == [{"event": "database pool nearly exhausted", "in_use": 35, "capacity": 36}]


def test_only_connections_idle_for_a_while_are_pinged_at_checkout(settings: Settings) -> None:
    """No round trip per checkout under load; a stale idle connection is swapped for a fresh one."""
    database = db_module.Database(settings.database)
    pings: list[str] = []

    class Connection:
        def __init__(self, alive: bool) -> None:
            self.alive = alive

        def ping(self) -> None:
            pings.append("ping")
            if not self.alive:
                raise ConnectionResetError("server closed the connection")

    busy = SimpleNamespace(info={db_module._IDLE_SINCE: time.monotonic()})
    database._on_checkout(Connection(alive=False), busy)  # just checked in: trusted, not pinged
    fresh = SimpleNamespace(info={})
    database._on_checkout(Connection(alive=False), fresh)  # just connected: not pinged
    assert pings == []
    idle = SimpleNamespace(info={db_module._IDLE_SINCE: time.monotonic() - db_module._IDLE_PING_SECONDS - 1})
    database._on_checkout(Connection(alive=True), idle)
    assert pings == ["ping"]
    with pytest.raises(DisconnectionError):  # the pool discards it and checks out another
        database._on_checkout(Connection(alive=False), idle)


def test_jsonb_values_are_decoded_like_the_stdlib_does() -> None:
    """msgspec reads jsonb text; a number past float's range (jsonb's numeric holds it) still reads, as infinity."""
    assert db_module._decode_json('{"a": [1, 2.5, "x", null, true], "big": 123456789012345678901234567890}') == {
        "a": [1, 2.5, "x", None, True],
        "big": 123456789012345678901234567890,
    }
    assert db_module._decode_json("1.5e400") == float("inf")
