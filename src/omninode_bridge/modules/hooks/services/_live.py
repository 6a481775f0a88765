"""The live view's plumbing: committed hooks go to a Redis stream that every process's SSE clients read.

A Redis stream rather than pub/sub because viewers resume: the SSE event id is the stream entry id plus
the hook's index in that entry, so a reconnecting ``EventSource`` (``Last-Event-ID``) continues right
after the last hook it saw, whichever process serves it. Request handlers never wait for Redis: they
queue hooks and one task per process appends whatever is queued as one entry (a JSON array; a batch of
1,000 hooks costs one XADD). The stream keeps the newest ``live_buffer_events`` entries (at least that
many hooks); a viewer that was away longer gets the gap from ``hook_events`` first.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import re
import secrets
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, cast

import msgspec
import structlog
from litestar.response.sse import ServerSentEventMessage
from prometheus_client import Counter
from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy import select

from omninode_bridge.core.db import Database
from omninode_bridge.modules.hooks.messages import AcceptedHook
from omninode_bridge.modules.hooks.models import HookEvent
from omninode_bridge.modules.hooks.schemas import DEFAULT_NAMESPACE

__all__ = [
    "LIVE_STREAM",
    "LiveFeed",
    "StreamFilter",
    "StreamGrant",
    "TicketBook",
    "reader_client",
    "sse_events",
    "valid_stream_id",
]

log = structlog.get_logger(__name__)

LIVE_STREAM = "hooks:live"
#: A stream entry as this app's clients return it (bytes: no ``decode_responses``); redis-py annotates its
#: stream replies with the union over both decoding modes and both protocols, hence the casts below.
_StreamEntry = tuple[bytes, dict[bytes, bytes]]
_TICKETS = "hooks:ticket:"
#: An SSE id: the stream entry id, then ``/`` and the hook's index in the entry.
_STREAM_ID = re.compile(r"^\d{1,20}-\d{1,20}(/\d{1,5})?$")
#: Most rows a resuming viewer gets from the database for a gap the stream no longer covers.
MAX_BACKLOG_ROWS = 5000
KEEPALIVE_SECONDS = 15.0

live_dropped_total = Counter("omninode_hooks_live_dropped_total", "Hooks not shown live (queue full or Redis down).")


class _Head(msgspec.Struct):
    """The fields of a live entry a filter looks at (the rest is skipped by the decoder)."""

    source: str | None = None
    namespace: str = DEFAULT_NAMESPACE
    session_id: str | None = None
    event_type: str | None = None


class StreamGrant(msgspec.Struct, frozen=True):
    """What a stream ticket lets its holder see: the issuing key and its namespaces (None: all)."""

    key_id: uuid.UUID
    namespaces: frozenset[str] | None = None


_entries = msgspec.json.Decoder(list[msgspec.Raw])
_head = msgspec.json.Decoder(_Head)
_grant = msgspec.json.Decoder(StreamGrant)


def _id_key(stream_id: str) -> tuple[int, int]:
    ms, _, seq = stream_id.partition("-")
    return int(ms), int(seq or 0)


class LiveFeed:
    """Appends committed hooks to the Redis stream and reads it for SSE clients.

    Args:
        redis: The app's Redis client (appends).
        reader: A Redis client without a short socket timeout, for blocking reads.
        maxlen: Entries the stream keeps (approximately).
        queue_size: Entries waiting for Redis before new ones are dropped.
    """

    def __init__(self, redis: Redis, reader: Redis, *, maxlen: int, queue_size: int = 50_000) -> None:
        self.redis = redis
        self.reader = reader
        self.maxlen = maxlen
        self._queue: asyncio.Queue[bytes] = asyncio.Queue(maxsize=queue_size)
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()

    def push(self, entries: list[bytes]) -> None:
        """Queue entries for the stream (called after commit; never blocks)."""
        for entry in entries:
            try:
                self._queue.put_nowait(entry)
            except asyncio.QueueFull:
                live_dropped_total.inc()
        self._idle.clear()
        self._wake.set()

    async def run(self) -> None:
        """Append queued entries until cancelled; a Redis outage drops them (the database has them)."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            while not self._queue.empty():
                batch = [self._queue.get_nowait() for _ in range(min(self._queue.qsize(), 1000))]
                try:
                    # One stream entry per chunk: a JSON array of the hooks (a batch of 1,000 is one XADD).
                    packed = b"[" + b",".join(batch) + b"]"
                    await self.redis.xadd(LIVE_STREAM, {"d": packed}, maxlen=self.maxlen, approximate=True)
                except (RedisError, OSError) as exc:
                    live_dropped_total.inc(len(batch))
                    log.warning("live stream unavailable; hooks not shown live", error=str(exc), dropped=len(batch))
            self._idle.set()

    async def flush(self) -> None:
        """Wait until every queued entry was appended (or dropped); callers bound it with a timeout."""
        await self._idle.wait()

    async def last_id(self) -> str:
        """Id of the newest entry, ``0-0`` when the stream is empty."""
        newest = cast("list[_StreamEntry]", await self.reader.xrevrange(LIVE_STREAM, count=1))
        return newest[0][0].decode() if newest else "0-0"

    async def first_id(self) -> str | None:
        """Id of the oldest entry kept."""
        oldest = cast("list[_StreamEntry]", await self.reader.xrange(LIVE_STREAM, count=1))
        return oldest[0][0].decode() if oldest else None

    async def entry(self, entry_id: str) -> bytes | None:
        """The packed hooks of one entry, if it is still kept."""
        found = cast("list[_StreamEntry]", await self.reader.xrange(LIVE_STREAM, min=entry_id, max=entry_id, count=1))
        return found[0][1][b"d"] if found else None

    async def read(self, after: str, *, block_ms: int) -> list[tuple[str, bytes]]:
        """Entries after ``after``, waiting up to ``block_ms`` for the first."""
        result = cast(
            "list[tuple[bytes, list[_StreamEntry]]]",
            await self.reader.xread({LIVE_STREAM: after}, count=500, block=block_ms),
        )
        if not result:
            return []
        return [(entry_id.decode(), fields[b"d"]) for entry_id, fields in result[0][1]]


class TicketBook:
    """Short-lived tickets that let a browser's ``EventSource`` (which sends no headers) open the stream."""

    def __init__(self, redis: Redis, ttl_seconds: int) -> None:
        self.redis = redis
        self.ttl = ttl_seconds

    async def issue(self, key_id: uuid.UUID, namespaces: frozenset[str] | None = None) -> str:
        """A new ticket for the API key ``key_id``, limited to the key's ``namespaces``."""
        ticket = secrets.token_urlsafe(24)
        grant = StreamGrant(key_id=key_id, namespaces=namespaces)
        await self.redis.set(_TICKETS + ticket, msgspec.json.encode(grant), ex=self.ttl)
        return ticket

    async def redeem(self, ticket: str) -> StreamGrant | None:
        """What a valid ticket grants (reusable until it expires, so the browser can reconnect)."""
        if not ticket or len(ticket) > 64:
            return None
        value = await self.redis.get(_TICKETS + ticket)
        if not value:
            return None
        try:
            return _grant.decode(value)
        except msgspec.DecodeError:  # a ticket issued before grants carried namespaces: it is refused
            return None


@dataclass(frozen=True, slots=True)
class StreamFilter:
    """Which hooks a viewer wants (and may see: ``namespaces``); ``None`` matches anything."""

    source: str | None = None
    session_id: str | None = None
    event_type: str | None = None
    namespaces: frozenset[str] | None = None

    def matches(self, event: Any) -> bool:
        """Whether ``event`` (anything with source, namespace, session_id and event_type attributes) passes."""
        return (
            (self.namespaces is None or event.namespace in self.namespaces)
            and (self.source is None or event.source == self.source)
            and (self.session_id is None or event.session_id == self.session_id)
            and (self.event_type is None or event.event_type == self.event_type)
        )

    @property
    def empty(self) -> bool:
        return self.source is None and self.session_id is None and self.event_type is None and self.namespaces is None


def valid_stream_id(value: str | None) -> str | None:
    """``value`` if it looks like a stream entry id, else None (an unusable Last-Event-ID starts live)."""
    return value if value and _STREAM_ID.match(value) else None


async def _backlog(database: Database, since_ms: int, until_ms: int, wanted: StreamFilter) -> list[tuple[str, bytes]]:
    """Hooks received in [since, until) from the database, as (synthetic id, live entry)."""
    since = dt.datetime.fromtimestamp(since_ms / 1000, dt.UTC)
    until = dt.datetime.fromtimestamp(until_ms / 1000, dt.UTC)
    query = (
        select(HookEvent)
        .where(HookEvent.received_at > since, HookEvent.received_at < until)
        .order_by(HookEvent.received_at, HookEvent.id)
        .limit(MAX_BACKLOG_ROWS)
    )
    for column, value in (
        (HookEvent.source, wanted.source),
        (HookEvent.session_id, wanted.session_id),
        (HookEvent.event_type, wanted.event_type),
    ):
        if value is not None:
            query = query.where(column == value)
    if wanted.namespaces is not None:
        query = query.where(HookEvent.namespace.in_(wanted.namespaces))
    async with database.unit_of_work() as uow:
        rows = (await uow.session.scalars(query)).all()
    out = []
    for row in rows:
        hook = AcceptedHook(
            event_id=row.event_id, kind=row.kind, source=row.source, event_type=row.event_type,
            correlation_id=row.correlation_id, occurred_at=row.occurred_at, data=row.data, redacted=row.redacted,
            session_id=row.session_id, tool_name=row.tool_name, tool_call_id=row.tool_call_id,
            received_at=row.received_at, namespace=row.namespace,
        )  # fmt: skip
        out.append((f"{int(row.received_at.timestamp() * 1000)}-0", hook.live()))
    return out


async def sse_events(
    feed: LiveFeed, database: Database, wanted: StreamFilter, last_event_id: str | None
) -> AsyncIterator[ServerSentEventMessage]:
    """The SSE messages of one viewer: the missed hooks after ``last_event_id`` (if any), then live ones.

    A new viewer's starting point is read here, before the response starts: a client that has its ``200`` (a
    browser's ``EventSource`` is open) sees every hook stored after it. Read in the stream, after the headers
    had gone, a hook posted in between was missed.

    Args:
        feed: The live feed.
        database: For gaps older than the stream.
        wanted: The viewer's filter.
        last_event_id: The ``Last-Event-ID`` the browser sent, if any.

    Returns:
        The messages, to stream.
    """
    resume = valid_stream_id(last_event_id)
    start = None
    if resume is None:
        with contextlib.suppress(RedisError, OSError):  # Redis away: the stream tries again (and ends if it fails)
            start = await feed.last_id()
    return _stream(feed, database, wanted, resume, start)


async def _stream(
    feed: LiveFeed, database: Database, wanted: StreamFilter, resume: str | None, start: str | None
) -> AsyncIterator[ServerSentEventMessage]:
    """:func:`sse_events`' messages: from ``resume`` (a valid ``Last-Event-ID``), else after ``start``."""
    yield ServerSentEventMessage(data=None, comment="connected", retry=1000)
    if resume is None:
        cursor = start if start is not None else await feed.last_id()
    else:
        cursor, _, index = resume.partition("/")
        first = await feed.first_id()
        if first is None or _id_key(first) > _id_key(cursor):
            # The stream was trimmed past the viewer's position (or emptied): fill the gap from the database.
            until_ms = _id_key(first)[0] if first else int(dt.datetime.now(dt.UTC).timestamp() * 1000) + 1
            for entry_id, entry in await _backlog(database, _id_key(cursor)[0], until_ms, wanted):
                yield ServerSentEventMessage(id=entry_id, event="hook", data=entry.decode())
            if first is None:
                cursor = await feed.last_id()
        elif index:
            # The rest of the entry the viewer was in the middle of.
            for message in _messages(cursor, await feed.entry(cursor), wanted, after=int(index)):
                yield message
    block_ms = int(KEEPALIVE_SECONDS * 1000)
    while True:
        entries = await feed.read(cursor, block_ms=block_ms)
        if not entries:
            yield ServerSentEventMessage(data=None, comment="keep-alive")
            continue
        for entry_id, packed in entries:
            cursor = entry_id
            for message in _messages(entry_id, packed, wanted):
                yield message


def _messages(
    entry_id: str, packed: bytes | None, wanted: StreamFilter, after: int = -1
) -> list[ServerSentEventMessage]:
    """The SSE messages of one stream entry (a JSON array of hooks) that pass the filter."""
    if not packed:
        return []
    out = []
    for index, raw in enumerate(_entries.decode(packed)):
        if index > after and (wanted.empty or wanted.matches(_head.decode(raw))):
            out.append(ServerSentEventMessage(id=f"{entry_id}/{index}", event="hook", data=bytes(raw).decode()))
    return out


@contextlib.asynccontextmanager
async def reader_client(url: str) -> AsyncIterator[Redis]:
    """A Redis client for blocking stream reads (its socket timeout outlasts the longest block)."""
    client = Redis.from_url(
        url, socket_timeout=KEEPALIVE_SECONDS + 10, socket_connect_timeout=2, health_check_interval=30
    )
    try:
        yield client
    finally:
        await client.aclose()
