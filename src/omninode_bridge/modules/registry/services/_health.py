"""The health checker: one process at a time (a Redis lease) expires TTLs, runs HTTP checks on their interval,
removes nodes critical past ``deregister_critical_after`` and purges old tombstones.

An HTTP check's last run is stored (``last_checked_at``), so a checker that takes over never checks a node
sooner than its interval after the previous checker did.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from typing import Any

import httpx
import structlog
from redis.asyncio import Redis
from sqlalchemy import (
    BindParameter,
    CompoundSelect,
    DateTime,
    bindparam,
    delete,
    func,
    literal,
    null,
    or_,
    select,
    union_all,
)

from omninode_bridge.core.db import Database
from omninode_bridge.core.module import raise_if_stopping
from omninode_bridge.core.tls import client_tls_context
from omninode_bridge.modules.registry.models import NodeRegistration
from omninode_bridge.modules.registry.services._addresses import AddressRefused, check_address, host_of
from omninode_bridge.modules.registry.services._catalog import Catalog, ttl_key

__all__ = ["HealthChecker", "Lease", "http_status"]

log = structlog.get_logger(__name__)
_RENEW = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) end
if redis.call('set', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end
return 0
"""


#: Ticks between two tombstone purges (at the default 0.25 s tick: a minute).
_PURGE_EVERY_ROUNDS = 240


def _due_query(now: BindParameter[dt.datetime]) -> CompoundSelect[Any]:
    """Nodes with a live TTL check, nodes whose HTTP check is due, and nodes critical past their deregister
    delay, as ``(rule, node_id, ttl, url, timeout)`` rows."""
    node = NodeRegistration
    live = node.deleted_at.is_(None)
    ttl = select(literal("ttl").label("rule"), node.node_id, node.check_ttl_seconds.label("ttl"),
                 null().label("url"), null().label("timeout"))  # fmt: skip
    http = select(literal("http"), node.node_id, null(), node.check_http, node.check_timeout_seconds)
    deregister = select(literal("deregister"), node.node_id, null(), null(), null())
    interval = func.make_interval(0, 0, 0, 0, 0, 0, node.check_interval_seconds)
    after = func.make_interval(0, 0, 0, 0, 0, 0, node.deregister_critical_after_seconds)
    http_due = or_(node.last_checked_at.is_(None), node.last_checked_at + interval <= now)
    critical_too_long = node.status_changed_at + after <= now
    return union_all(
        ttl.where(node.check_kind == "ttl", node.status != "critical", live),
        http.where(node.check_kind == "http", live, http_due),
        deregister.where(
            node.status == "critical", live, node.deregister_critical_after_seconds.is_not(None), critical_too_long
        ),
    )


#: The tick's one read, built once: compiled once and prepared once per connection (``commit_one``).
_DUE = _due_query(bindparam("now", type_=DateTime(timezone=True)))


class Lease:
    """A Redis lease: held by one owner until it stops renewing it."""

    def __init__(self, redis: Redis, key: str, seconds: float) -> None:
        self.redis = redis
        self.key = key
        self.ms = int(seconds * 1000)
        self.owner = uuid.uuid4().hex

    async def hold(self) -> bool:
        """Take or renew the lease; whether this owner holds it."""
        return bool(await self.redis.eval(_RENEW, 1, self.key, self.owner, self.ms))

    async def release(self) -> None:
        """Give it up (only if still ours)."""
        script = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"
        await self.redis.eval(script, 1, self.key, self.owner)


def http_status(code: int) -> str:
    """Consul's reading of an HTTP check: 2xx passing, 429 warning, anything else critical."""
    if 200 <= code < 300:
        return "passing"
    return "warning" if code == 429 else "critical"


class HealthChecker:
    """Runs the checks while this process holds the lease."""

    def __init__(
        self, catalog: Catalog, database: Database, redis: Redis, *, tick: float, lease_seconds: float,
        tombstone_seconds: float, allow_private: bool,
    ) -> None:  # fmt: skip
        self.catalog = catalog
        self.database = database
        self.redis = redis
        self.tick = tick
        self.lease = Lease(redis, "registry:checker", lease_seconds)
        self.tombstone_seconds = tombstone_seconds
        self.allow_private = allow_private
        self.http = httpx.AsyncClient(follow_redirects=False, verify=client_tls_context())
        self.running: set[str] = set()
        self.rounds = 0

    async def run(self) -> None:
        """Until cancelled: every tick, if this process holds the lease, one round."""
        try:
            while True:
                try:
                    if await self.lease.hold():
                        await self.round()
                except asyncio.CancelledError:
                    raise
                except Exception:  # a failed round (database, Redis down) is retried next tick
                    log.warning("registry: health round failed", exc_info=True)
                raise_if_stopping()
                await asyncio.sleep(self.tick)
        finally:
            await self.http.aclose()
            try:
                await self.lease.release()
            except Exception:  # the lease expires by itself
                log.debug("registry: lease not released", exc_info=True)

    async def round(self) -> None:
        """Expire TTLs, start due HTTP checks, deregister long-critical nodes, purge tombstones."""
        self.rounds += 1
        now = dt.datetime.now(dt.UTC)
        # One read a tick (the elected checker runs it a few times a second, nodes or not): each candidate row
        # says which of the three rules it is due for; the tombstone purge, a write, runs once a minute.
        # On the driver, without a session: the elected checker reads a few times a second even when idle.
        async with self.database.unit_of_work() as uow:
            rows = (await uow.commit_one(_DUE, {"now": now})).all()
        if self.rounds % _PURGE_EVERY_ROUNDS == 1:
            async with self.database.unit_of_work() as uow:
                purged = await uow.session.execute(
                    delete(NodeRegistration)
                    .where(NodeRegistration.deleted_at < now - dt.timedelta(seconds=self.tombstone_seconds))
                    .returning(NodeRegistration.modify_index)
                )
                newest = max(purged.scalars().all(), default=None)
                await uow.commit()
            if newest is not None:  # a query's index may step back to its newest remaining change
                await self.catalog.changes.announce(newest)
        # Rows are (rule, node_id, ttl, url, timeout): asyncpg records or SQLAlchemy rows, both by position.
        ttl_nodes = [(r[1], r[2]) for r in rows if r[0] == "ttl"]
        due = [(r[1], r[3], r[4]) for r in rows if r[0] == "http"]
        expired_critical = [r[1] for r in rows if r[0] == "deregister"]
        if ttl_nodes:
            present = await self.redis.mget([ttl_key(n) for n, _ in ttl_nodes])
            for (node_id, ttl), value in zip(ttl_nodes, present, strict=True):
                # Looked at again just before the write: a heartbeat that came since the read above must win.
                if value is None and not await self.redis.exists(ttl_key(node_id)):
                    async with self.database.unit_of_work() as uow:
                        await self.catalog.set_status(
                            uow, node_id, "critical", f"TTL expired: no heartbeat in {ttl:g}s"
                        )
        for node_id, url, timeout in due:
            if node_id not in self.running and url is not None:
                self.running.add(node_id)
                asyncio.create_task(self._check(node_id, url, timeout or 5.0), name=f"registry-check-{node_id}")  # noqa: RUF006
        for node_id in expired_critical:
            async with self.database.unit_of_work() as uow:
                await self.catalog.deregister(uow, node_id, reason="critical past deregister_critical_after")

    async def _check(self, node_id: str, url: str, seconds: float) -> None:
        try:
            try:
                await check_address(host_of(url), allow_private=self.allow_private)
                response = await self.http.get(url, timeout=seconds)
                status = http_status(response.status_code)
                output = (
                    f"HTTP GET {url}: {response.status_code} {response.reason_phrase} Output: {response.text[:512]}"
                )
            except AddressRefused as exc:
                status, output = "critical", f"HTTP GET {url}: refused: {exc}"
            except httpx.HTTPError as exc:
                status, output = "critical", f"HTTP GET {url}: {type(exc).__name__}: {exc}"[:1024]
            async with self.database.unit_of_work() as uow:
                await self.catalog.set_status(uow, node_id, status, output, checked=True)
        except Exception:  # one failed check must not stop the others
            log.warning("registry: HTTP check failed", node_id=node_id, exc_info=True)
        finally:
            self.running.discard(node_id)
