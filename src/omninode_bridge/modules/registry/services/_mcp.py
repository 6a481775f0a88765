"""The MCP server registry: publish a ``server.json`` version, list and read them (the official v0 API shape).

Publishing needs the API-key scope ``registry``; there is no GitHub or DNS proof of namespace ownership here.
The latest version of a server is its highest semantic version (or, for versions that are not semantic, the
newest published).
"""

from __future__ import annotations

import datetime as dt

import msgspec
from sqlalchemy import select, update

from omninode_bridge.core.db import Database, UnitOfWork
from omninode_bridge.core.errors import ProblemError
from omninode_bridge.core.inputs import InputError
from omninode_bridge.modules.registry import server_json
from omninode_bridge.modules.registry.models import McpServerVersion
from omninode_bridge.modules.registry.semver import RangeError, Version, parse_version

__all__ = ["McpRegistry"]


def _semver(version: str) -> Version | None:
    try:
        return parse_version(version)
    except RangeError:
        return None


def _response(row: McpServerVersion) -> server_json.ServerResponse:
    return server_json.ServerResponse(
        server=row.server,
        meta=server_json.official_meta(
            published_at=row.published_at, updated_at=row.updated_at, is_latest=row.is_latest
        ),
    )


class McpRegistry:
    """Published MCP servers.

    Args:
        database: Reads open their own unit of work.
    """

    def __init__(self, database: Database) -> None:
        self.database = database

    async def publish(self, uow: UnitOfWork, document: server_json.ServerJson) -> server_json.ServerResponse:
        """Store a new version and commit.

        Raises:
            InputError: The version is ``latest`` or a range (422 naming ``version``).
            ProblemError: 409 when this version of the server is already published.
        """
        problem = server_json.exact_version_problem(document.version)
        if problem is not None:
            raise InputError(problem, field="version", source="body")
        # One publisher of a name at a time: the latest flag is decided against the versions already there.
        await uow.session.execute(select(McpServerVersion.id).where(McpServerVersion.name == document.name)
                                  .with_for_update())  # fmt: skip
        existing = (
            await uow.session.execute(
                select(McpServerVersion.version, McpServerVersion.is_latest).where(
                    McpServerVersion.name == document.name
                )
            )
        ).all()
        if any(v == document.version for v, _ in existing):
            await uow.rollback()
            raise ProblemError(409, f"{document.name} {document.version} is already published; publish a new version.")
        mine = _semver(document.version)
        others = [_semver(v) for v, _ in existing]
        latest = mine is None or all(o is None or o < mine for o in others)
        now = dt.datetime.now(dt.UTC)
        if latest:
            await uow.session.execute(
                update(McpServerVersion).where(McpServerVersion.name == document.name).values(is_latest=False)
            )
        row = McpServerVersion(
            name=document.name, version=document.version, description=document.description,
            server=msgspec.to_builtins(document), is_latest=latest, published_at=now, updated_at=now,
        )  # fmt: skip
        uow.session.add(row)
        await uow.session.flush()
        out = _response(row)
        await uow.commit()
        return out

    async def page(
        self, *, search: str | None, after: int | None, limit: int, updated_since: dt.datetime | None,
        latest_only: bool,
    ) -> server_json.ServerList:  # fmt: skip
        """One page of published versions, in publication order."""
        statement = select(McpServerVersion)
        if search:
            escaped = search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            statement = statement.where(McpServerVersion.name.ilike(f"%{escaped}%", escape="\\"))
        if after is not None:
            statement = statement.where(McpServerVersion.id > after)
        if updated_since is not None:
            statement = statement.where(McpServerVersion.updated_at >= updated_since)
        if latest_only:
            statement = statement.where(McpServerVersion.is_latest.is_(True))
        async with self.database.unit_of_work() as uow:
            rows = list((await uow.session.scalars(statement.order_by(McpServerVersion.id).limit(limit + 1))).all())
        more = len(rows) > limit
        rows = rows[:limit]
        return server_json.ServerList(
            servers=[_response(r) for r in rows],
            metadata=server_json.ListMetadata(count=len(rows), next_cursor=str(rows[-1].id) if more else None),
        )

    async def versions(self, name: str) -> list[server_json.ServerResponse]:
        """Every published version of ``name``, oldest first."""
        async with self.database.unit_of_work() as uow:
            rows = (await uow.session.scalars(
                select(McpServerVersion).where(McpServerVersion.name == name).order_by(McpServerVersion.id)
            )).all()  # fmt: skip
        return [_response(r) for r in rows]

    async def version(self, name: str, version: str) -> server_json.ServerResponse | None:
        """One version of ``name`` (``latest`` for the latest), or None."""
        condition = McpServerVersion.is_latest.is_(True) if version == "latest" else McpServerVersion.version == version
        async with self.database.unit_of_work() as uow:
            row = await uow.session.scalar(select(McpServerVersion).where(McpServerVersion.name == name, condition))
        return _response(row) if row is not None else None
