"""Async Alembic environment: imports every module's models and migrates over asyncpg."""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from omninode_bridge.core.db import metadata
from omninode_bridge.migrations import import_all_models
from omninode_bridge.settings import load_settings

import_all_models()
target_metadata = metadata


def _url() -> str:
    url = context.config.attributes.get("database_url") or load_settings().database.url
    if not url:
        raise SystemExit("OMNINODE_DATABASE_URL is not set")
    return str(url)


def run_migrations_offline() -> None:
    """Emit SQL without connecting (``alembic upgrade head --sql``)."""
    context.configure(url=_url(), target_metadata=target_metadata, literal_binds=True, compare_type=True)
    with context.begin_transaction():
        context.run_migrations()


def _run(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=target_metadata, compare_type=True)
    with context.begin_transaction():
        context.run_migrations()


async def run_migrations_online() -> None:
    """Migrate over one async connection."""
    engine = create_async_engine(_url(), hide_parameters=True)  # no bound values in errors or logs
    async with engine.connect() as connection:
        await connection.run_sync(_run)
    await engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    asyncio.run(run_migrations_online())
