"""Use cases of the node catalog: register (idempotent by node id), deregister, heartbeat, status changes,
discovery with blocking queries, capabilities and the tool index.

Each change takes the next value of ``registry_index_seq`` as the node's ``modify_index``, stages its event in
the outbox in the same transaction, commits, then announces itself to every process (:class:`ChangeFeed`).
Reads open their own short unit of work: a blocking query must not hold a pooled connection while it waits.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec
from redis.asyncio import Redis
from sqlalchemy import Select, delete, func, insert, literal_column, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert

from omninode_bridge.core.db import Database, UnitOfWork
from omninode_bridge.core.errors import ProblemError
from omninode_bridge.core.events import EventPublisher, new_envelope
from omninode_bridge.core.inputs import InputError
from omninode_bridge.modules.registry import messages, schemas
from omninode_bridge.modules.registry.models import INDEX_SEQUENCE, NodeRegistration, RegistryTool
from omninode_bridge.modules.registry.semver import Range
from omninode_bridge.modules.registry.services._addresses import (
    AddressRefused,
    check_address,
    host_of,
    registered_hosts,
)
from omninode_bridge.modules.registry.services._changes import ChangeFeed
from omninode_bridge.modules.registry.services._lookups import LookupCache

__all__ = ["Catalog", "NodeQuery", "node_out", "ttl_key"]

_STATIC = ("name", "node_type", "version", "address", "port", "url", "tags", "meta", "capabilities", "tools")
_CHECK = (
    "check_kind", "check_ttl_seconds", "check_http", "check_interval_seconds", "check_timeout_seconds",
    "deregister_critical_after_seconds",
)  # fmt: skip


def ttl_key(node_id: str) -> str:
    """The Redis key whose presence means the node heartbeated within its TTL."""
    return f"registry:ttl:{node_id}"


def node_out(row: NodeRegistration) -> schemas.NodeOut:
    """The response body of a node row."""
    check: dict[str, Any] | None = None
    if row.check_kind == "ttl":
        check = {"kind": "ttl", "ttl": row.check_ttl_seconds}
    elif row.check_kind == "http":
        check = {"kind": "http", "http": row.check_http, "interval": row.check_interval_seconds,
                 "timeout": row.check_timeout_seconds}  # fmt: skip
    if check is not None:
        check["deregister_critical_after"] = row.deregister_critical_after_seconds
    return schemas.NodeOut(
        node_id=row.node_id, name=row.name, node_type=row.node_type, version=row.version, address=row.address,
        port=row.port, url=row.url, tags=list(row.tags), meta=dict(row.meta), capabilities=list(row.capabilities),
        tools=list(row.tools), check=check, status=row.status, output=row.output,
        status_changed_at=row.status_changed_at, registered_at=row.registered_at, updated_at=row.updated_at,
        create_index=row.create_index, modify_index=row.modify_index,
    )  # fmt: skip


@dataclass(frozen=True, slots=True)
class NodeQuery:
    """Discovery filters. All given ones must hold; ``version`` applies to ``capability`` (or to the node's own
    version without one)."""

    name: str | None = None
    node_type: str | None = None
    tags: Sequence[str] = ()
    capability: str | None = None
    version: Range | None = None
    status: str | None = None
    meta: dict[str, str] = field(default_factory=dict)

    def static(self, query: Select[Any]) -> Select[Any]:
        """Narrowed by the filters that do not depend on health (these decide the query's index)."""
        if self.name is not None:
            query = query.where(NodeRegistration.name == self.name)
        if self.node_type is not None:
            query = query.where(NodeRegistration.node_type == self.node_type)
        if self.tags:
            query = query.where(NodeRegistration.tags.contains(list(self.tags)))
        if self.capability is not None:
            query = query.where(NodeRegistration.capabilities.contains([{"name": self.capability}]))
        if self.meta:
            query = query.where(NodeRegistration.meta.contains(self.meta))
        return query

    def key(self) -> tuple[Any, ...]:
        """The query as a cache key."""
        return (self.name, self.node_type, tuple(self.tags), self.capability,
                self.version.text if self.version is not None else None, self.status,
                tuple(sorted(self.meta.items())))  # fmt: skip

    def matches_version(self, row: NodeRegistration) -> bool:
        """Whether the row satisfies the version range."""
        if self.version is None:
            return True
        if self.capability is None:
            return self.version.contains(row.version)
        return any(c["name"] == self.capability and self.version.contains(c["version"]) for c in row.capabilities)


class Catalog:
    """The node catalog of one app.

    Args:
        database: Opens the units of work of reads and of the checker.
        publisher: Stages registry events in the outbox.
        redis: TTL keys.
        changes: Announces committed changes and wakes blocking queries.
        allow_private: Whether checks may target private ranges.
    """

    def __init__(
        self, database: Database, publisher: EventPublisher, redis: Redis, changes: ChangeFeed, *, allow_private: bool
    ) -> None:
        self.database = database
        self.publisher = publisher
        self.redis = redis
        self.changes = changes
        self.allow_private = allow_private
        self.lookups = LookupCache()

    async def _next_index(self, uow: UnitOfWork) -> int:
        return int(await uow.session.scalar(select(INDEX_SEQUENCE.next_value())) or 0)

    async def _stage(self, uow: UnitOfWork, event_type: str, payload: msgspec.Struct, node_id: str) -> None:
        envelope = new_envelope(event_type=event_type, payload=payload, correlation_id=node_id)
        await self.publisher.publish(uow, messages.REGISTRY_TOPIC, envelope)

    async def _validate_check(self, node: schemas.NodeIn) -> None:
        check = node.check
        if check is None:
            return
        if check.kind == "ttl" and check.ttl is None:
            raise InputError("a TTL check needs its ttl", field="check.ttl", source="body")
        if check.kind == "http":
            if check.http is None:
                raise InputError("an HTTP check needs its URL", field="check.http", source="body")
            host = host_of(check.http)
            if host not in registered_hosts(node.address, node.url):
                raise InputError("must target the node's own address or url host", field="check.http", source="body")
            try:
                await check_address(host, allow_private=self.allow_private)
            except AddressRefused as exc:
                raise InputError(str(exc), field="check.http", source="body") from None

    async def register(self, uow: UnitOfWork, node: schemas.NodeIn) -> tuple[schemas.NodeOut, bool]:
        """Register or update ``node`` and commit; an identical re-registration changes nothing.

        Returns:
            The node and whether the catalog changed.
        """
        await self._validate_check(node)
        check = node.check
        now = dt.datetime.now(dt.UTC)
        values: dict[str, Any] = {
            "name": node.name, "node_type": node.node_type, "version": node.version, "address": node.address,
            "port": node.port, "url": node.url, "tags": list(node.tags), "meta": dict(node.meta),
            "capabilities": [{"name": c.name, "version": c.version} for c in node.capabilities],
            "tools": [msgspec.to_builtins(t) for t in node.tools],
            "check_kind": check.kind if check else "none",
            "check_ttl_seconds": check.ttl if check and check.kind == "ttl" else None,
            "check_http": check.http if check and check.kind == "http" else None,
            "check_interval_seconds": check.interval if check and check.kind == "http" else None,
            "check_timeout_seconds": check.timeout if check and check.kind == "http" else None,
            "deregister_critical_after_seconds": check.deregister_critical_after if check else None,
        }  # fmt: skip
        row = await uow.session.scalar(
            select(NodeRegistration).where(NodeRegistration.node_id == node.node_id).with_for_update()
        )
        if (
            row is not None
            and row.deleted_at is None
            and all(getattr(row, k) == values[k] for k in (*_STATIC, *_CHECK))
        ):
            out = node_out(row)
            await uow.rollback()
            return out, False
        names = {node.name} if row is None else {node.name, row.name}  # a renamed node leaves its old service too
        index = await self._next_index(uow)
        status = check.status if check else "passing"
        if row is None:
            inserted = await uow.session.scalar(
                pg_insert(NodeRegistration)
                .values(
                    node_id=node.node_id,
                    status=status,
                    output="",
                    status_changed_at=now,
                    create_index=index,
                    modify_index=index,
                    **values,
                )
                .on_conflict_do_nothing(index_elements=["node_id"])
                .returning(NodeRegistration.id)
            )
            if inserted is None:  # registered concurrently: this request is the update
                await uow.rollback()
                return await self.register(uow, node)
        else:
            fresh = row.deleted_at is not None or row.check_kind != values["check_kind"]
            update_values = {**values, "modify_index": index, "updated_at": now, "deleted_at": None}
            if fresh:
                update_values |= {"status": status, "output": "", "status_changed_at": now, "create_index": index}
            await uow.session.execute(
                update(NodeRegistration).where(NodeRegistration.id == row.id).values(**update_values)
            )
        await uow.session.execute(delete(RegistryTool).where(RegistryTool.node_id == node.node_id))
        if node.tools:
            await uow.session.execute(
                insert(RegistryTool),
                [{"node_id": node.node_id, "name": t.name, "description": t.description,
                  "input_schema": t.input_schema} for t in node.tools],
            )  # fmt: skip
        stored = await uow.session.scalar(
            select(NodeRegistration)
            .where(NodeRegistration.node_id == node.node_id)
            .execution_options(populate_existing=True)
        )
        assert stored is not None
        await self._stage(
            uow, messages.NODE_REGISTERED,
            messages.NodeRegistered(node_id=node.node_id, name=node.name, node_type=node.node_type,
                                    version=node.version, capabilities=values["capabilities"], status=stored.status,
                                    index=index),
            node.node_id,
        )  # fmt: skip
        out = node_out(stored)
        if check is not None and check.kind == "ttl" and stored.status != "critical" and check.ttl is not None:
            # Before the commit: the elected checker (maybe in another process) marks a TTL node critical when it
            # sees the row without this key. Should the commit fail, the stray key only expires.
            await self.redis.set(ttl_key(node.node_id), str(time.time()), px=int(check.ttl * 1000))
        await uow.commit()
        await self.changes.announce(index, names)
        return out, True

    async def deregister(self, uow: UnitOfWork, node_id: str, *, reason: str = "deregistered") -> bool:
        """Remove a node (kept as a tombstone) and commit; False when it is not registered."""
        now = dt.datetime.now(dt.UTC)
        index = await self._next_index(uow)
        name = await uow.session.scalar(
            update(NodeRegistration)
            .where(NodeRegistration.node_id == node_id, NodeRegistration.deleted_at.is_(None))
            .values(deleted_at=now, updated_at=now, modify_index=index)
            .returning(NodeRegistration.name)
        )
        if name is None:
            await uow.rollback()
            return False
        await uow.session.execute(delete(RegistryTool).where(RegistryTool.node_id == node_id))
        await self._stage(
            uow, messages.NODE_DEREGISTERED,
            messages.NodeDeregistered(node_id=node_id, name=name, reason=reason, index=index), node_id,
        )  # fmt: skip
        await uow.commit()
        await self.redis.delete(ttl_key(node_id))
        await self.changes.announce(index, [name])
        return True

    async def set_status(
        self, uow: UnitOfWork, node_id: str, status: str, output: str, *, checked: bool = False
    ) -> schemas.NodeOut | None:
        """Record a check result and commit: a status change takes an index and is an event.

        Args:
            uow: A unit of work.
            node_id: The node.
            status: passing, warning or critical.
            output: What the check said.
            checked: An HTTP check ran (its time is recorded even when nothing changed).

        Returns:
            The node, or None when it is not registered.
        """
        now = dt.datetime.now(dt.UTC)
        row = await uow.session.scalar(
            select(NodeRegistration)
            .where(NodeRegistration.node_id == node_id, NodeRegistration.deleted_at.is_(None))
            .with_for_update()
        )
        if row is None:
            await uow.rollback()
            return None
        previous = row.status
        if previous == status:
            if row.output != output or checked:
                # A new output moves no index (as in Consul) but changes the answers: the cached ones go.
                visible = row.output != output
                row.output = output
                if checked:
                    row.last_checked_at = now
                out = node_out(row)
                await uow.commit()
                if visible:
                    await self.changes.announce(row.modify_index, [row.name])
                return out
            out = node_out(row)
            await uow.rollback()
            return out
        index = await self._next_index(uow)
        row.status, row.output, row.status_changed_at, row.modify_index = status, output, now, index
        if checked:
            row.last_checked_at = now
        await self._stage(
            uow, messages.NODE_STATUS_CHANGED,
            messages.NodeStatusChanged(node_id=node_id, name=row.name, previous=previous, status=status,
                                       output=output, index=index),
            node_id,
        )  # fmt: skip
        out = node_out(row)
        await uow.commit()
        await self.changes.announce(index, [row.name])
        return out

    async def heartbeat(self, node_id: str, beat: schemas.Heartbeat) -> schemas.NodeOut:
        """A TTL pass (or warn/fail): renews the TTL key and records a status change.

        A beat that changes nothing (the node's status and output already what it says) costs the node's cached
        read (:meth:`beat_target`, kept until the catalog changes) and one Redis ``SET PX``: no database work.
        A status or output change goes through :meth:`set_status` in a unit of work of its own (its index, its
        event, committed).

        Raises:
            ProblemError: 404 when not registered, 409 when the node has no TTL check.
        """
        target = await self.beat_target(node_id)
        if target is None:
            raise ProblemError(404, f"No node {node_id!r} is registered.")
        kind, ttl, node = target
        if kind != "ttl" or ttl is None:
            raise ProblemError(409, f"Node {node_id!r} has no TTL check; its health comes from its {kind} check.")
        await self.redis.set(ttl_key(node_id), str(time.time()), px=int(ttl * 1000))
        if node.status == beat.status and node.output == beat.output:
            return node
        async with self.database.unit_of_work() as uow:
            changed = await self.set_status(uow, node_id, beat.status, beat.output)
        if changed is None:
            raise ProblemError(404, f"No node {node_id!r} is registered.")
        return changed

    async def beat_target(self, node_id: str) -> tuple[str, float | None, schemas.NodeOut] | None:
        """A live node's check kind, TTL and answer, cached until the catalog changes (None when not registered).

        Every change to a node (status, output, registration, removal) moves the change feed's generation, in this
        process at once and in the others when the notification arrives, so a beat reads the node again after it.
        """

        async def read() -> tuple[str, float | None, schemas.NodeOut] | None:
            async with self.database.unit_of_work() as uow:
                row = await uow.session.scalar(
                    select(NodeRegistration).where(
                        NodeRegistration.node_id == node_id, NodeRegistration.deleted_at.is_(None)
                    )
                )
                return (row.check_kind, row.check_ttl_seconds, node_out(row)) if row is not None else None

        found: tuple[str, float | None, schemas.NodeOut] | None = await self.lookups.get(
            ("node", node_id), self.changes.generation, read
        )
        return found

    async def get(self, node_id: str) -> schemas.NodeOut | None:
        """A registered node, or None."""
        async with self.database.unit_of_work() as uow:
            row = await uow.session.scalar(
                select(NodeRegistration).where(
                    NodeRegistration.node_id == node_id, NodeRegistration.deleted_at.is_(None)
                )
            )
            return node_out(row) if row is not None else None

    async def index_of(self, query: NodeQuery) -> int:
        """The query's index: the newest change of any node (live or removed) its static filters match."""

        async def read() -> int:
            async with self.database.unit_of_work() as uow:
                value = await uow.session.scalar(query.static(select(func.max(NodeRegistration.modify_index))))
            return int(value or 1)

        return int(await self.lookups.get(("index", query.key()), self.changes.version(query.name), read))

    async def find(
        self, query: NodeQuery, *, limit: int, after: int | None = None
    ) -> tuple[list[schemas.NodeOut], str | None]:
        """One page of matching live nodes, oldest registration first (cached until the catalog changes)."""

        async def read() -> tuple[tuple[schemas.NodeOut, ...], str | None]:
            items, next_page = await self._find(query, limit=limit, after=after)
            return tuple(items), next_page

        items, next_page = await self.lookups.get(
            ("find", query.key(), limit, after), self.changes.version(query.name), read
        )
        return list(items), next_page

    async def _find(
        self, query: NodeQuery, *, limit: int, after: int | None
    ) -> tuple[list[schemas.NodeOut], str | None]:
        found: list[tuple[int, schemas.NodeOut]] = []
        cursor = after
        async with self.database.unit_of_work() as uow:
            while True:
                statement = query.static(select(NodeRegistration)).where(NodeRegistration.deleted_at.is_(None))
                if query.status is not None:
                    statement = statement.where(NodeRegistration.status == query.status)
                if cursor is not None:
                    statement = statement.where(NodeRegistration.id > cursor)
                batch = list(
                    (await uow.session.scalars(statement.order_by(NodeRegistration.id).limit(limit + 1))).all()
                )
                found.extend((r.id, node_out(r)) for r in batch if query.matches_version(r))
                # A version range drops rows after SQL: read on until the page is full or the rows run out.
                if len(found) > limit or len(batch) <= limit:
                    break
                cursor = batch[-1].id
        next_cursor = str(found[limit - 1][0]) if len(found) > limit else None
        return [out for _, out in found[:limit]], next_cursor

    async def wait(self, query: NodeQuery, index: int | None, wait: float) -> int:
        """Hold until the query's index passes ``index`` or ``wait`` seconds pass; the query's index then."""
        deadline = time.monotonic() + wait
        while True:
            generation = self.changes.generation
            current = await self.index_of(query)
            left = deadline - time.monotonic()
            if index is None or current > index or current < index or left <= 0:
                return current
            await self.changes.wait_after(generation, left)

    async def capabilities(self) -> list[schemas.CapabilitySummary]:
        """Every capability with its versions and provider counts."""
        cap = func.jsonb_array_elements(NodeRegistration.capabilities).table_valued("value").alias("cap")
        name = cap.c.value.op("->>")(literal_column("'name'"))
        version = cap.c.value.op("->>")(literal_column("'version'"))
        statement = (
            select(
                name.label("name"),
                func.array_agg(func.distinct(version)).label("versions"),
                func.count(func.distinct(NodeRegistration.id)).label("providers"),
                func.count(func.distinct(NodeRegistration.id))
                .filter(NodeRegistration.status == "passing")
                .label("passing"),
            )
            .select_from(NodeRegistration)
            .join(cap, literal_column("true"))
            .where(NodeRegistration.deleted_at.is_(None))
            .group_by(name)
            .order_by(name)
        )
        async with self.database.unit_of_work() as uow:
            rows = (await uow.session.execute(statement)).all()
        return [schemas.CapabilitySummary(name=r.name, versions=sorted(r.versions), providers=r.providers,
                                          passing=r.passing) for r in rows]  # fmt: skip

    async def tools(self, q: str, *, node_type: str | None, status: str | None, limit: int) -> list[schemas.ToolHit]:
        """Tools whose name or description match ``q`` (web-search syntax), best first."""
        tsquery = func.websearch_to_tsquery("english", q)
        rank = func.ts_rank(RegistryTool.search, tsquery)
        statement = (
            select(RegistryTool, NodeRegistration, rank.label("rank"))
            .join(NodeRegistration, NodeRegistration.node_id == RegistryTool.node_id)
            .where(RegistryTool.search.op("@@")(tsquery), NodeRegistration.deleted_at.is_(None))
        )
        if status is not None:
            statement = statement.where(NodeRegistration.status == status)
        if node_type is not None:
            statement = statement.where(NodeRegistration.node_type == node_type)
        async with self.database.unit_of_work() as uow:
            rows = (await uow.session.execute(statement.order_by(rank.desc(), RegistryTool.id).limit(limit))).all()
        return [
            schemas.ToolHit(
                name=t.name, description=t.description, input_schema=t.input_schema, rank=float(r), node_id=n.node_id,
                provider=n.name, node_type=n.node_type, status=n.status, address=n.address, port=n.port, url=n.url,
            )
            for t, n, r in rows
        ]  # fmt: skip
