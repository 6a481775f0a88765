"""Helpers both test kinds share (no servers): sample files, contract copies, OpenAPI-derived cases, data."""

from __future__ import annotations

from pathlib import Path

from omninode_bridge.settings import Settings, load_settings

REPO_ROOT = Path(__file__).resolve().parents[2]
DATA_DIR = Path(__file__).resolve().parent / "data"
# The TCP "discard" port: nothing of ours listens there.
CLOSED_PORT = 9


def offline_settings() -> Settings:
    """Test settings whose service addresses point at a closed port: for code that is built but never connects.

    Unit tests use it where a constructor wants settings (the app, the engine, a contract loader); the unit
    conftest refuses any connection, so a test that would reach a server fails instead of hanging.
    """
    return load_settings({"OMNINODE_ENV": "test", "OMNINODE_LOG_LEVEL": "WARNING"}, env_file=None).with_services(
        database_url=f"postgresql+asyncpg://test@127.0.0.1:{CLOSED_PORT}/test",
        redis_url=f"redis://127.0.0.1:{CLOSED_PORT}/0",
        kafka=f"127.0.0.1:{CLOSED_PORT}",
    )
