"""The Alembic history against the models, on a database of its own in the session's PostgreSQL."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
from alembic import command
from sqlalchemy.engine import make_url

from omninode_bridge.embedded import EmbeddedStack
from omninode_bridge.migrations import alembic_config, upgrade


async def _admin(server_url: str, statement: str) -> None:
    connection = await asyncpg.connect(server_url)
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


def test_migrations_match_the_models_and_go_down_and_up(stack: EmbeddedStack) -> None:
    # Synchronous: Alembic's env runs its own event loop.
    assert stack.postgres is not None
    server = make_url(stack.postgres.url)
    admin_url = server.set(drivername="postgresql").render_as_string(hide_password=False)
    name = f"migrations_{uuid.uuid4().hex[:8]}"
    asyncio.run(_admin(admin_url, f'CREATE DATABASE "{name}"'))
    try:
        url = server.set(database=name).render_as_string(hide_password=False)
        config = alembic_config(url)
        upgrade(url)
        # Autogenerate finds nothing to do: every model change has its migration.
        command.check(config)
        # Every revision can be undone, and redone, on an empty database.
        command.downgrade(config, "base")
        upgrade(url)
        command.check(config)
    finally:
        asyncio.run(_admin(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
