"""The platform's response structs."""

from __future__ import annotations

import msgspec


def test_health_schema_matches_struct() -> None:
    from omninode_bridge.platform.schemas import Health

    sample = {"status": "healthy", "components": {}, "version": "1", "uptime_seconds": 1.0}
    assert msgspec.convert(sample, Health).status == "healthy"
