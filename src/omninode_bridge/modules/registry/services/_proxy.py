"""The tool-capture proxy's upstream side: which instances of a service it may call (an in-process cache
invalidated by the catalog's change feed), round-robin with failover, through the one shared connection pool.

Only registered addresses are reachable: the target's scheme, host and port come from a registration (its
``url``, or ``address`` and ``port``), never from the request, and they pass the registry's address rules
(private ranges only when allowed). The request only chooses the path below the service.
"""

from __future__ import annotations

import asyncio
import itertools
import time
import urllib.parse
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

from sqlalchemy import select

from omninode_bridge.core.db import Database
from omninode_bridge.core.errors import ProblemError
from omninode_bridge.core.http1 import (
    ConnectFailed,
    ConnectionFailed,
    ConnectTimedOut,
    Origin,
    StreamedResponse,
    StreamPool,
)
from omninode_bridge.modules.registry.models import NodeRegistration
from omninode_bridge.modules.registry.services._addresses import AddressRefused, check_address
from omninode_bridge.modules.registry.services._changes import ChangeFeed

__all__ = ["Call", "Instance", "InstanceCache", "Upstream", "admit", "forward"]

#: A cache entry is re-read after this long even without a change notification (a lost Redis message).
MAX_AGE_SECONDS = 5.0
#: An instance that refused a connection is skipped for this long (unless no other is left).
COOLDOWN_SECONDS = 2.0


@dataclass(frozen=True, slots=True)
class Instance:
    """One reachable instance of a service: its node id, status and base URL (scheme, host, port, path)."""

    node_id: str
    status: str
    scheme: str
    host: str
    port: int
    base_path: str

    @property
    def origin(self) -> Origin:
        """Where to connect: (scheme, host, port), always the registration's."""
        return (self.scheme, self.host, self.port)

    @property
    def netloc(self) -> bytes:
        """The ``Host`` header's value (the port only when it is not the scheme's default)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if self.scheme == "https" else 80
        return (host if self.port == default else f"{host}:{self.port}").encode("idna")

    def target(self, raw_path: bytes, query: bytes) -> bytes:
        """The request target of a path below the service: the instance's base path, then the path, as sent."""
        path = self.base_path.rstrip("/").encode() + (raw_path if raw_path.startswith(b"/") else b"/" + raw_path)
        return path + (b"?" + query if query else b"")


@dataclass(slots=True)
class _Entry:
    generation: int
    loaded: float
    registered: bool
    instances: list[Instance]
    refused: int
    turn: itertools.count[int]


def _instance(row: NodeRegistration) -> Instance | None:
    """The instance a registration names, or None when it gives no port or URL to call."""
    if row.url:
        parts = urllib.parse.urlsplit(row.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            return None
        port = parts.port or (443 if parts.scheme == "https" else 80)
        return Instance(row.node_id, row.status, parts.scheme, parts.hostname, port, parts.path)
    if row.address and row.port:
        return Instance(row.node_id, row.status, "http", row.address.strip("[]"), row.port, "")
    return None


async def admit(rows: Sequence[NodeRegistration], *, allow_private: bool) -> tuple[list[Instance], int]:
    """The instances the proxy may call among a service's registrations, and how many the address rules refused
    (registrations without a port or URL are neither)."""
    instances: list[Instance] = []
    refused = 0
    for row in rows:
        instance = _instance(row)
        if instance is None:
            continue
        try:
            await check_address(instance.host, allow_private=allow_private)
        except AddressRefused:
            refused += 1
            continue
        instances.append(instance)
    return instances, refused


class InstanceCache:
    """The instances of each service, read from PostgreSQL once per catalog change.

    Args:
        database: Where registrations are read.
        changes: The change feed; a new generation invalidates every entry.
        allow_private: Whether instances may be on loopback, private or link-local addresses.
    """

    def __init__(self, database: Database, changes: ChangeFeed, *, allow_private: bool) -> None:
        self.database = database
        self.changes = changes
        self.allow_private = allow_private
        self._entries: dict[str, _Entry] = {}
        self._loading: dict[str, asyncio.Task[_Entry]] = {}
        self._down: dict[str, float] = {}

    async def _load(self, service: str) -> _Entry:
        generation = self.changes.version(service)
        async with self.database.unit_of_work() as uow:
            rows = (
                await uow.session.scalars(
                    select(NodeRegistration)
                    .where(NodeRegistration.name == service, NodeRegistration.deleted_at.is_(None))
                    .order_by(NodeRegistration.id)
                )
            ).all()
        instances, refused = await admit(rows, allow_private=self.allow_private)
        return _Entry(generation, time.monotonic(), bool(rows), instances, refused, itertools.count())

    async def _entry(self, service: str) -> _Entry:
        entry = self._entries.get(service)
        if (
            entry is not None
            and entry.generation == self.changes.version(service)
            and time.monotonic() - entry.loaded < MAX_AGE_SECONDS
        ):
            return entry
        task = self._loading.get(service)
        if task is None:  # one read per service at a time, in a task of its own (a cancelled request leaves it be)
            task = asyncio.ensure_future(self._store(service))
            self._loading[service] = task
            task.add_done_callback(lambda _: self._loading.pop(service, None))
        return await asyncio.shield(task)

    async def _store(self, service: str) -> _Entry:
        entry = await self._load(service)
        if len(self._entries) > 10_000:  # many names asked for (most of them unknown): start over
            self._entries.clear()
        self._entries[service] = entry
        return entry

    async def candidates(self, service: str) -> list[Instance]:
        """The instances to try for one request, in order: passing ones round-robin (those that recently refused
        a connection last), then warning ones; never critical ones.

        Raises:
            ProblemError: 404 when no such service is registered, 403 when its addresses are outside what the
                proxy may reach, 503 when no instance is healthy.
        """
        entry = await self._entry(service)
        if not entry.registered:
            raise ProblemError(404, f"No service {service!r} is registered.")
        if not entry.instances:
            if entry.refused:
                raise ProblemError(403, f"The addresses of {service!r} are outside what the proxy may reach.")
            raise ProblemError(503, f"No instance of {service!r} has an address and port (or url) to call.")
        passing = [i for i in entry.instances if i.status == "passing"]
        healthy = passing or [i for i in entry.instances if i.status == "warning"]
        if not healthy:
            raise ProblemError(503, f"No instance of {service!r} is passing its health check.")
        start = next(entry.turn) % len(healthy)
        ordered = healthy[start:] + healthy[:start]
        if self._down:
            now = time.monotonic()
            ordered.sort(key=lambda i: self._down.get(i.node_id, 0.0) > now)
        return ordered

    def refused(self, instance: Instance) -> None:
        """An instance refused or timed out a connection: try it after the others for a while."""
        self._down[instance.node_id] = time.monotonic() + COOLDOWN_SECONDS
        if len(self._down) > 10_000:
            self._down.clear()


@dataclass(slots=True)
class Upstream:
    """The answer of the instance that took the request."""

    response: StreamedResponse
    instance: Instance
    attempts: int


@dataclass(frozen=True, slots=True)
class Call:
    """What to send to whichever instance takes it: method, path and query below the service, headers (without
    ``Host``), body, and the timeouts."""

    method: str
    raw_path: bytes
    query: bytes
    headers: list[tuple[bytes, bytes]]
    body: AsyncIterator[bytes] | None
    connect: float
    timeout: float


async def forward(
    pool: StreamPool, cache: InstanceCache, service: str, call: Call, instances: Sequence[Instance]
) -> Upstream:
    """Send ``call`` to the first instance that accepts the connection; its answer is streamed (the caller closes
    it).

    Raises:
        ProblemError: 502 when every instance refused the connection (or broke it before answering), 504 when
            the upstream did not answer in time.
    """
    last: Exception | None = None
    for attempt, instance in enumerate(instances, start=1):
        headers = [(b"host", instance.netloc), *call.headers]
        try:
            response = await pool.send(
                instance.origin, call.method, instance.target(call.raw_path, call.query), headers, call.body,
                connect=call.connect, wait=call.timeout,
            )  # fmt: skip
        except ConnectFailed as exc:  # nothing was sent: the next instance
            cache.refused(instance)
            last = exc
            continue
        except TimeoutError:
            raise ProblemError(504, f"{service!r} did not answer in time.") from None
        except ConnectionFailed:
            raise ProblemError(502, f"{service!r} broke the connection before answering.") from None
        return Upstream(response, instance, attempt)
    if isinstance(last, ConnectTimedOut):
        raise ProblemError(504, f"No instance of {service!r} accepted a connection in time.")
    raise ProblemError(502, f"No instance of {service!r} accepted a connection ({len(instances)} tried).")
