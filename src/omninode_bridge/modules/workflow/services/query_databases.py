"""The databases other than the app's that named queries run on (a query's ``dsn_env``)."""

from __future__ import annotations

import asyncio

import msgspec

from omninode_bridge.core.db import Database
from omninode_bridge.core.settings import DatabaseSettings

__all__ = ["QueryDatabases"]

#: Connections kept per other database: sql tasks are a few of the engine's concurrent tasks, not requests.
_POOL_SIZE = 4
_MAX_OVERFLOW = 4


class QueryDatabases:
    """One :class:`Database` per distinct URL, built on first use, disposed by :meth:`aclose`.

    Args:
        urls: The URL each ``dsn_env`` variable holds (``contract.query_database_urls``).
        template: The app's database settings; timeouts and breaker thresholds are taken from them.
    """

    def __init__(self, urls: dict[str, str], template: DatabaseSettings) -> None:
        self._urls = dict(urls)
        self._template = template
        # Keyed by URL: two variables holding one URL share a pool.
        self._databases: dict[str, Database] = {}

    def get(self, variable: str) -> Database:
        """The database behind ``variable`` (built once; building connects nothing).

        Raises:
            KeyError: No query declared ``variable``.
        """
        url = self._urls[variable]
        database = self._databases.get(url)
        if database is None:
            settings = msgspec.structs.replace(
                self._template, url=url, pool_size=_POOL_SIZE, max_overflow=_MAX_OVERFLOW, echo=False
            )
            database = self._databases[url] = Database(settings)
        return database

    async def aclose(self) -> None:
        """Close every pool (the app stops)."""
        databases, self._databases = list(self._databases.values()), {}
        await asyncio.gather(*(database.dispose() for database in databases), return_exceptions=True)
