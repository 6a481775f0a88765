"""The health checker: one process at a time (a Redis lease) expires TTLs, runs HTTP checks on their interval,
removes nodes critical past ``deregister_critical_after`` and purges old tombstones.

An HTTP check's last run is stored (``last_checked_at``), so a checker that takes over never checks a node
sooner than its interval after the previous checker did.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid

import httpx
import structlog
from redis.asyncio import Redis
from sqlalchemy import delete, func, or_, select

from omninode_bridge.core.db import Database
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
        self.http = httpx.AsyncClient(follow_redirects=False)
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
        async with self.database.unit_of_work() as uow:
            ttl_nodes = (await uow.session.execute(
                select(NodeRegistration.node_id, NodeRegistration.check_ttl_seconds).where(
                    NodeRegistration.check_kind == "ttl", NodeRegistration.status != "critical",
                    NodeRegistration.deleted_at.is_(None))
            )).all()  # fmt: skip
            due = (await uow.session.execute(
                select(NodeRegistration.node_id, NodeRegistration.check_http, NodeRegistration.check_timeout_seconds)
                .where(
                    NodeRegistration.check_kind == "http", NodeRegistration.deleted_at.is_(None),
                    or_(NodeRegistration.last_checked_at.is_(None),
                        NodeRegistration.last_checked_at
                        + func.make_interval(0, 0, 0, 0, 0, 0, NodeRegistration.check_interval_seconds) <= now),
                )
            )).all()  # fmt: skip
            expired_critical = (await uow.session.execute(
                select(NodeRegistration.node_id).where(
                    NodeRegistration.status == "critical", NodeRegistration.deleted_at.is_(None),
                    NodeRegistration.deregister_critical_after_seconds.is_not(None),
                    NodeRegistration.status_changed_at
                    + func.make_interval(0, 0, 0, 0, 0, 0, NodeRegistration.deregister_critical_after_seconds) <= now,
                )
            )).scalars().all()  # fmt: skip
            await uow.session.execute(
                delete(NodeRegistration).where(
                    NodeRegistration.deleted_at < now - dt.timedelta(seconds=self.tombstone_seconds)
                )
            )
            await uow.commit()
        if ttl_nodes:
            present = await self.redis.mget([ttl_key(n) for n, _ in ttl_nodes])
            for (node_id, ttl), value in zip(ttl_nodes, present, strict=True):
                if value is None:
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
