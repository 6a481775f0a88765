"""A small Redis client for the two scripts every ``/execute`` runs (its start and its end): ``EVALSHA`` over a
pool of plain RESP2 connections.

Why not redis-py here: measured at one connection against a zero-latency upstream, redis-py's call path (its
connection pool, retry wrapper, health check, command packer and pure-Python RESP3 parser) spent about 0.3 ms
of CPU per script call, and the start's call is on the critical path of every request; this client (an
``asyncio.Protocol`` per connection, the reply parsed where it arrives) a few hundredths of that. Everything
else the module asks of Redis (cooldowns, reads of the catalog page, health) keeps the app's redis-py client.

It connects as that client does, from its connection settings: TCP or a Unix socket, ``AUTH`` (user and
password), ``SELECT`` of the database, its socket timeouts. A client it cannot copy (TLS, a credential
provider) is not copied: :meth:`ScriptPool.of` returns None and the caller keeps redis-py. Errors are
redis-py's exception classes (``ResponseError``, ``ConnectionError``, ``TimeoutError``), so callers handle
both paths alike. A script Redis does not hold (restarted, ``SCRIPT FLUSH``) is sent once with ``EVAL``.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.connection import Connection, UnixDomainSocketConnection
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from omninode_bridge.core.http1 import ClientConnection

__all__ = ["ScriptPool", "encode_command", "parse_reply"]

#: A reply this size is a bug of the caller (the scripts answer a few short values): drop the connection.
_MAX_BUFFER = 8 * 1024 * 1024
_INCOMPLETE = object()


def encode_command(*parts: bytes | str | int | float) -> bytes:
    """One command as a RESP array of bulk strings."""
    out = [b"*%d\r\n" % len(parts)]
    for part in parts:
        raw = part if isinstance(part, bytes) else str(part).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(raw), raw))
    return b"".join(out)


def parse_reply(buffer: bytes | bytearray, start: int = 0) -> tuple[Any, int]:
    """One RESP2 reply from ``buffer[start:]``: (value, end offset), or (``_INCOMPLETE``, start) when more
    bytes are needed. Errors are returned as :class:`ResponseError` instances (not raised), as in arrays."""
    end = buffer.find(b"\r\n", start)
    if end < 0:
        return _INCOMPLETE, start
    kind, line = buffer[start : start + 1], bytes(buffer[start + 1 : end])
    after = end + 2
    if kind == b"+":
        return line, after
    if kind == b"-":
        return ResponseError(line.decode(errors="replace")), after
    if kind == b":":
        return int(line), after
    if kind == b"$":
        size = int(line)
        if size < 0:
            return None, after
        if len(buffer) < after + size + 2:
            return _INCOMPLETE, start
        return bytes(buffer[after : after + size]), after + size + 2
    if kind == b"*":
        count = int(line)
        if count < 0:
            return None, after
        items: list[Any] = []
        for _ in range(count):
            item, after = parse_reply(buffer, after)
            if item is _INCOMPLETE:
                return _INCOMPLETE, start
            items.append(item)
        return items, after
    raise RedisConnectionError(f"not a RESP2 reply (type byte {kind!r})")


class _Connection(ClientConnection):
    """One connection: a command at a time, its reply parsed as it arrives."""

    def __init__(self) -> None:
        super().__init__()
        self.received = False
        self._buffer = bytearray()
        self._waiter: asyncio.Future[Any] | None = None

    def data_received(self, data: bytes) -> None:
        if self._waiter is None or self._waiter.done():  # bytes nobody asked for: not to be trusted any more
            self.close()
            return
        self.received = True
        self._buffer += data
        try:
            value, end = parse_reply(self._buffer)
        except (ValueError, RedisConnectionError) as exc:
            self._waiter.set_exception(RedisConnectionError(f"invalid reply from Redis: {exc}"))
            self.close()
            return
        if value is not _INCOMPLETE:
            del self._buffer[:end]
            self._waiter.set_result(value)
        elif len(self._buffer) > _MAX_BUFFER:
            self._waiter.set_exception(RedisConnectionError("the reply from Redis is too large"))
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(RedisConnectionError("Redis closed the connection"))

    async def call(self, data: bytes) -> Any:
        """Send one command and return its reply (an error reply is returned, not raised)."""
        if self.transport is None or self.lost or self.transport.is_closing():
            raise RedisConnectionError("the connection is closed")
        self._waiter = asyncio.get_running_loop().create_future()
        self.received = False
        self.transport.write(data)
        try:
            return await self._waiter
        finally:
            self._waiter = None


@dataclass(frozen=True, slots=True)
class _Target:
    host: str  # TCP (unused for a Unix socket)
    port: int
    path: str | None  # a Unix socket
    handshake: tuple[bytes, ...]  # AUTH and SELECT, as encoded commands
    timeout: float | None
    connect_timeout: float | None


class ScriptPool:
    """Idle connections to one Redis, for ``EVALSHA`` (one pool per module instance).

    Args:
        target: Where and how to connect (see :meth:`of`).
        max_idle: Idle connections kept; more are closed when given back.
    """

    def __init__(self, target: _Target, max_idle: int = 64) -> None:
        self._target = target
        self.max_idle = max_idle
        self._idle: deque[_Connection] = deque()
        self._closed = False

    @classmethod
    def of(cls, redis: Redis) -> ScriptPool | None:
        """A pool connecting as ``redis`` does, or None when its connections are not plain TCP or Unix
        sockets with a password (TLS, a credential provider: keep redis-py for those)."""
        pool = redis.connection_pool
        kwargs = pool.connection_kwargs
        if pool.connection_class not in (Connection, UnixDomainSocketConnection) or kwargs.get("credential_provider"):
            return None
        handshake: list[bytes] = []
        password, username = kwargs.get("password"), kwargs.get("username")
        if password:
            handshake.append(encode_command("AUTH", *([username] if username else []), password))
        if int(kwargs.get("db") or 0):
            handshake.append(encode_command("SELECT", int(kwargs["db"])))
        unix = pool.connection_class is UnixDomainSocketConnection
        target = _Target(
            host=str(kwargs.get("host", "localhost")),
            port=int(kwargs.get("port", 6379)),
            path=str(kwargs["path"]) if unix else None,
            handshake=tuple(handshake),
            timeout=kwargs.get("socket_timeout"),
            connect_timeout=kwargs.get("socket_connect_timeout") or kwargs.get("socket_timeout"),
        )
        return cls(target)

    async def evalsha(self, script: bytes, sha: str, keys: Sequence[str], args: Sequence[str | int | float]) -> Any:
        """Run ``script`` (by its SHA-1, ``sha``; sent whole once if Redis does not hold it).

        Raises:
            ResponseError: The script failed.
            ConnectionError: Redis could not be reached or closed the connection mid-reply.
            TimeoutError: No reply within the client's socket timeout.
        """
        reply = await self._call(encode_command("EVALSHA", sha, len(keys), *keys, *args))
        if isinstance(reply, ResponseError) and str(reply).startswith("NOSCRIPT"):
            reply = await self._call(encode_command("EVAL", script, len(keys), *keys, *args))
        if isinstance(reply, ResponseError):
            raise reply
        return reply

    async def _call(self, data: bytes) -> Any:
        connection, reused = await self._connection()
        try:
            try:
                reply = await self._bounded(connection.call(data))
            except RedisConnectionError:
                if not reused or connection.received:
                    raise
                # Redis closed the idle connection (a restart, its idle timeout) before reading the command.
                connection = await self._connect()
                reply = await self._bounded(connection.call(data))
        except BaseException:
            connection.close()  # cancelled, timed out or broken mid-reply: its state is unknown
            raise
        self._give_back(connection)
        return reply

    async def _bounded(self, call: Any, seconds: float | None = None) -> Any:
        limit = seconds if seconds is not None else self._target.timeout
        if limit is None:
            return await call
        try:
            async with asyncio.timeout(limit):
                return await call
        except TimeoutError:
            raise RedisTimeoutError("Timeout reading from Redis") from None

    async def _connection(self) -> tuple[_Connection, bool]:
        while self._idle:
            connection = self._idle.pop()  # the most recently used: the least likely to have been closed
            if connection.idle:
                return connection, True
        return await self._connect(), False

    async def _connect(self) -> _Connection:
        loop = asyncio.get_running_loop()
        target = self._target
        try:
            if target.path is not None:
                opening = loop.create_unix_connection(_Connection, target.path)
            else:
                opening = loop.create_connection(_Connection, target.host, target.port)
            opened: tuple[Any, _Connection] = await self._bounded(opening, target.connect_timeout)
            connection = opened[1]
        except OSError as exc:
            raise RedisConnectionError(f"Error connecting to Redis: {type(exc).__name__}") from None
        try:
            for command in target.handshake:
                reply = await self._bounded(connection.call(command))
                if isinstance(reply, ResponseError):
                    raise RedisConnectionError(f"Redis refused the connection's set-up: {reply}")
        except BaseException:
            connection.close()
            raise
        return connection

    def _give_back(self, connection: _Connection) -> None:
        if self._closed or not connection.idle or len(self._idle) >= self.max_idle:
            connection.close()
            return
        self._idle.append(connection)

    def close(self) -> None:
        """Close every idle connection; connections in use close when their call ends."""
        self._closed = True
        while self._idle:
            self._idle.pop().close()
