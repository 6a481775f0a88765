"""Database access: the async engine, the unit of work and the circuit breaker around PostgreSQL.

One :class:`Database` per app. Requests get a :class:`UnitOfWork` through the ``uow`` dependency: one
session, one transaction, committed explicitly by the service layer (``await uow.commit()``) and rolled
back when the request ends without a commit. Repositories only ``add``/``execute``/``flush``.

The unit of work is ours rather than advanced-alchemy's Litestar session plugin because that provider
has no breaker gate and its ``before_send`` hook commits after the response has started; models and
repositories do come from advanced-alchemy.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import msgspec
import structlog
from advanced_alchemy.base import orm_registry
from sqlalchemy import ClauseElement, Executable, event, literal, select, text
from sqlalchemy.exc import DBAPIError, DisconnectionError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.schema import ScalarElementColumnDefault
from sqlalchemy.util import greenlet_spawn

from omninode_bridge.core.breaker import CircuitBreaker
from omninode_bridge.core.settings import DatabaseSettings

__all__ = ["Database", "Rows", "UnitOfWork", "is_database_unavailable", "metadata"]

log = structlog.get_logger(__name__)

_EXHAUSTION_WARNING_INTERVAL_S = 60.0
#: A pooled connection idle longer than this is pinged when checked out (see ``Database._on_checkout``).
_IDLE_PING_SECONDS = 2.0
_IDLE_SINCE = "omninode_idle_since"

#: The metadata every module's tables register on (advanced-alchemy's shared registry).
metadata = orm_registry.metadata


def is_database_unavailable(exc: BaseException) -> bool:
    """True when ``exc`` means PostgreSQL cannot be reached, not that the query was wrong."""
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    if isinstance(exc, OperationalError | InterfaceError | PoolTimeoutError):
        return True
    if isinstance(exc, DBAPIError):
        orig = getattr(exc, "orig", None)
        cause = getattr(orig, "__cause__", None) or orig
        return isinstance(
            cause,
            OSError
            | TimeoutError
            | asyncpg.PostgresConnectionError
            | asyncpg.CannotConnectNowError
            | asyncpg.InterfaceError,
        )
    # Raised by asyncpg itself on the fast path of ``UnitOfWork.commit_one``.
    return isinstance(exc, OSError | TimeoutError | asyncpg.PostgresConnectionError | asyncpg.InterfaceError)


def _stamp_idle_since(_dbapi_connection: Any, record: Any) -> None:
    record.info[_IDLE_SINCE] = time.monotonic()


def _stamp_connected(_dbapi_connection: Any, record: Any) -> None:
    record.info.pop(_IDLE_SINCE, None)


#: Statements compiled for asyncpg: (SQL with ``$n`` placeholders, parameter names in order, their bind
#: processors, their values in the statement itself); None for a statement the fast path does not take
#: (expanding ``IN`` parameters).
_Compiled = tuple[str, tuple[str, ...], tuple[Callable[[Any], Any] | None, ...], tuple[Any, ...]]
_POSITIONAL: dict[int, tuple[Executable, _Compiled | None]] = {}
_POSITIONAL_LIMIT = 256
_REQUIRED = object()


def _positional(statement: Executable, engine: AsyncEngine) -> _Compiled | None:
    """``statement`` as asyncpg takes it, compiled once (statements are built once, at import)."""
    cached = _POSITIONAL.get(id(statement))
    if cached is not None and cached[0] is statement:
        return cached[1]
    dialect = engine.dialect
    compiled = statement.compile(dialect=dialect) if isinstance(statement, ClauseElement) else None
    entry: _Compiled | None = None
    if isinstance(compiled, SQLCompiler) and not compiled.literal_execute_params and not compiled.post_compile_params:
        names = tuple(compiled.positiontup or ())
        binds = {name: bind for bind, name in compiled.bind_names.items()}
        # Columns whose Python-side default SQLAlchemy computes at execution: a constant one is taken here,
        # a callable one leaves the statement to SQLAlchemy.
        prefetch = {column.key: column.default for column in (*compiled.insert_prefetch, *compiled.update_prefetch)}
        constants = {
            key: default.arg for key, default in prefetch.items() if isinstance(default, ScalarElementColumnDefault)
        }
        if len(constants) == len(prefetch) and all(name in binds for name in names):
            # The parameters' types convert values as SQLAlchemy would (UUID and UTC datetime decorators).
            processors = tuple(binds[name].type.dialect_impl(dialect).bind_processor(dialect) for name in names)
            # A literal of the statement (``x == 5``) has its value; a named parameter comes from the caller.
            inline = tuple(
                constants[name]
                if name in constants
                else _REQUIRED
                if binds[name].required
                else binds[name].effective_value
                for name in names
            )
            entry = (compiled.string, names, processors, inline)
    if len(_POSITIONAL) >= _POSITIONAL_LIMIT:  # statements built per call would not be reused anyway
        _POSITIONAL.clear()
    _POSITIONAL[id(statement)] = (statement, entry)
    return entry


def _is_disconnect(exc: BaseException) -> bool:
    """Whether ``exc``, raised around an asyncpg call, leaves the connection unusable: gone, or cancelled
    with the statement in flight (its reply would be read by the next user of the connection)."""
    return isinstance(
        exc,
        OSError | TimeoutError | asyncio.CancelledError | asyncpg.PostgresConnectionError | asyncpg.InterfaceError,
    )


class Rows:
    """The rows of a :meth:`UnitOfWork.commit_one` statement, fetched (tuples or asyncpg records).

    Args:
        rows: The rows, in order.
    """

    __slots__ = ("_rows",)

    def __init__(self, rows: Sequence[Any]) -> None:
        self._rows = rows

    def all(self) -> Sequence[Any]:
        """Every row."""
        return self._rows

    def first(self) -> Any | None:
        """The first row, or None when there is none."""
        return self._rows[0] if self._rows else None

    def one(self) -> Any:
        """The only row.

        Raises:
            ValueError: There is not exactly one row.
        """
        if len(self._rows) != 1:
            raise ValueError(f"expected one row, got {len(self._rows)}")
        return self._rows[0]

    def scalar_one(self) -> Any:
        """The first column of the only row.

        Raises:
            ValueError: There is not exactly one row.
        """
        return self.one()[0]


class UnitOfWork:
    """One transaction of one request or message.

    Args:
        session: The session of this unit; its transaction begins on first use. Without it, ``factory``
            makes the session the first time it is needed.
        factory: Makes the unit's session when first needed: a unit that only runs :meth:`commit_one` or
            :meth:`pooled_driver` never makes one (creating and closing a session was ~9% of the CPU of a
            request that writes with ``commit_one``).
        engine: The engine ``factory``'s sessions are bound to (for the session-less paths).
    """

    __slots__ = ("_after_commit", "_committed", "_engine", "_factory", "_session")

    def __init__(
        self,
        session: AsyncSession | None = None,
        *,
        factory: Callable[[], AsyncSession] | None = None,
        engine: AsyncEngine | None = None,
    ) -> None:
        if session is None and factory is None:
            raise ValueError("a unit of work needs a session or a session factory")
        self._session = session
        self._factory = factory
        self._engine = engine
        self._committed = False
        self._after_commit: list[Callable[[], None]] = []

    @property
    def session(self) -> AsyncSession:
        """The unit's session (made on first use); its transaction begins with its first statement."""
        if self._session is None:
            assert self._factory is not None  # one of the two is set (__init__)
            self._session = self._factory()
        return self._session

    def _bind(self) -> Any:
        """The engine, without making a session for it."""
        return self._engine if self._engine is not None else self.session.bind

    def _in_transaction(self) -> bool:
        return self._session is not None and self._session.in_transaction()

    async def _end(self, *, rollback: bool) -> None:
        """Roll back (after an error) and close the session, if one was made."""
        session = self._session
        if session is None:
            return
        try:
            if rollback:
                try:
                    await session.rollback()
                except Exception as exc:  # the connection may be gone; the caller's error matters
                    log.debug("rollback after error failed", error_type=type(exc).__name__)
        finally:
            await session.close()

    def after_commit(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` once the current transaction has committed (e.g. wake the outbox relay)."""
        if callback not in self._after_commit:
            self._after_commit.append(callback)

    async def commit(self) -> None:
        """Commit the transaction; later work on the session starts a new one."""
        await self.session.commit()
        self._committed = True
        callbacks, self._after_commit = self._after_commit, []
        for callback in callbacks:
            callback()

    async def commit_one(self, statement: Executable, params: Mapping[str, Any] | None = None) -> Rows:
        """Execute ``statement`` as the whole transaction and commit it: the fast way to write durably.

        A unit that has not touched the database yet runs a ``text()`` statement on the driver (asyncpg) of
        a pooled connection, without a session or a transaction block: PostgreSQL commits a single
        statement by itself, so that is one round trip, where ``BEGIN``, the statement and ``COMMIT`` are
        three, and none of SQLAlchemy's per-statement work (a third of a stamp's CPU in py-spy). The text is
        compiled once per statement object and prepared once per connection (asyncpg's statement cache):
        build it once at import (a CTE that writes the rows and their outbox events). Other statements, or
        a unit already in a transaction, go through the session (the statement commits with the earlier
        work). Callbacks of :meth:`after_commit` run afterwards either way; the unit is committed.

        Returns:
            The statement's rows, already fetched (the transaction is over).
        """
        engine = self._bind()
        compiled = None
        # With ``echo`` on, statements go through SQLAlchemy, which logs them (the driver would not).
        if not self._in_transaction() and isinstance(engine, AsyncEngine) and not engine.echo:
            compiled = _positional(statement, engine)
        if compiled is None or not isinstance(engine, AsyncEngine):
            if self.session.in_transaction():
                result = await self.session.execute(statement, params)
            else:
                # Autocommit is a flag of SQLAlchemy's asyncpg adapter (no round trip): it sends no BEGIN,
                # and the pool resets the connection's isolation level when it is checked in.
                connection = await self.session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
                try:
                    result = await connection.execute(statement, params)
                except BaseException:
                    # PostgreSQL undid the statement; release the connection so the unit can be used again.
                    with contextlib.suppress(Exception):
                        await self.session.rollback()
                    raise
            # An INSERT without RETURNING has no rows to fetch (fetching them raises).
            rows = Rows(list(result) if getattr(result, "returns_rows", True) else [])
            await self.commit()
            return rows
        sql, names, processors, inline = compiled
        values = params or {}
        args = []
        for name, process, default in zip(names, processors, inline, strict=True):
            value = values[name] if default is _REQUIRED or name in values else default
            args.append(value if process is None else process(value))
        async with self.pooled_driver() as driver:
            records = await driver.fetch(sql, *args)
        callbacks, self._after_commit = self._after_commit, []
        for callback in callbacks:
            callback()
        return Rows(records)

    @asynccontextmanager
    async def pooled_driver(self) -> AsyncIterator[asyncpg.Connection]:
        """A pooled connection's asyncpg driver, outside the unit's session, for hot paths.

        No session and no SQLAlchemy execute: what runs on it is the caller's (autocommit statements, or a
        transaction of its own with ``driver.transaction()``, ended before the block ends). The connection
        goes back to the pool afterwards; one cut (or left with a statement in flight by a cancellation) is
        closed and every older pooled connection recycled, as SQLAlchemy does on a disconnect. The unit
        counts as used (the breaker records the outcome).
        """
        engine = self._bind()
        if not isinstance(engine, AsyncEngine):
            raise RuntimeError("the unit of work's session is not bound to an engine")
        pooled = await engine.raw_connection()
        try:
            driver = pooled.driver_connection
            if driver is None:
                raise InterfaceError("pooled_driver", None, ConnectionError("the pooled connection is closed"))
            yield driver
        except BaseException as exc:
            if _is_disconnect(exc):
                # Closed at once (outside a greenlet: no I/O, no await) and its slot returned to the pool
                # (``invalidate`` checks it in; closing it again would not).
                engine.sync_engine.pool._invalidate(pooled, exc, _checkin=False)
                with contextlib.suppress(Exception):
                    pooled.invalidate(exc)
            else:
                with contextlib.suppress(Exception):
                    await greenlet_spawn(pooled.close)
            raise
        await greenlet_spawn(pooled.close)
        self._committed = True

    async def rollback(self) -> None:
        """Roll the transaction back."""
        await self.session.rollback()

    async def driver_connection(self) -> asyncpg.Connection:
        """The asyncpg connection of this unit's transaction, for what SQLAlchemy does not offer (``COPY``).

        SQLAlchemy's asyncpg adapter sends ``BEGIN`` only with the first statement it executes; a ``COPY``
        on the driver before that would run outside the transaction (committed at once, never rolled
        back). A first statement is executed here when none has been.
        """
        connection = await self.session.connection()
        driver = (await connection.get_raw_connection()).driver_connection
        if driver is None:
            raise RuntimeError("the unit of work's connection is closed")
        if not driver.is_in_transaction():
            await self.session.execute(select(literal(1)))
        return driver

    @property
    def used(self) -> bool:
        """Whether the unit touched the database (a transaction is open or was committed)."""
        return self._committed or self._in_transaction()


def _decode_json(text: str) -> Any:
    """A ``jsonb`` value read from PostgreSQL: msgspec's decoder (the stdlib's took ~2% of the workflow engine's CPU
    decoding the specs and inputs of claimed tasks); a number past float's range (which jsonb may hold) as the
    stdlib reads it."""
    try:
        return msgspec.json.decode(text)
    except msgspec.DecodeError:
        return json.loads(text)


class Database:
    """The engine, its session factory and the breaker that guards them.

    Args:
        settings: Database settings; ``settings.url`` must be set.
        on_breaker_change: Called with the new state on every breaker transition (metrics).
    """

    def __init__(self, settings: DatabaseSettings, on_breaker_change: Any = None) -> None:
        if not settings.url:
            raise ValueError("OMNINODE_DATABASE_URL is not set")
        self.settings = settings
        self.breaker = CircuitBreaker(
            "database",
            failure_threshold=settings.breaker_failure_threshold,
            reset_seconds=settings.breaker_reset_seconds,
            half_open_calls=settings.breaker_half_open_calls,
            on_change=on_breaker_change,
        )
        server_settings = {"application_name": "omninode-bridge"}
        if settings.statement_timeout_ms:
            server_settings["statement_timeout"] = str(settings.statement_timeout_ms)
        # Creating the engine does not connect; the first checkout does.
        self.engine: AsyncEngine = create_async_engine(
            settings.url,
            pool_size=settings.pool_size,
            max_overflow=settings.max_overflow,
            pool_timeout=settings.pool_timeout_seconds,
            # No ping per checkout (a round trip on every request): connections idle for a while are
            # pinged in ``_on_checkout`` instead, and a disconnect seen on any statement invalidates
            # the whole pool (SQLAlchemy recycles every connection older than that error).
            pool_pre_ping=False,
            pool_recycle=1800,
            echo=settings.echo,
            # Bound values (webhook secrets, key hashes, stamp metadata) never reach exception text or echo.
            hide_parameters=True,
            connect_args={"timeout": settings.connect_timeout_seconds, "server_settings": server_settings},
            json_deserializer=_decode_json,
        )
        self.session_maker = async_sessionmaker(self.engine, expire_on_commit=False, class_=AsyncSession)
        self._next_exhaustion_warning = 0.0
        self._signals: dict[str, asyncio.Event] = {}
        pool = self.engine.sync_engine.pool
        event.listen(pool, "checkout", self._on_checkout)
        event.listen(pool, "checkin", _stamp_idle_since)
        event.listen(pool, "connect", _stamp_connected)

    def signal(self, name: str) -> asyncio.Event:
        """A named in-process event that ``after_commit`` callbacks set to wake background workers."""
        event = self._signals.get(name)
        if event is None:
            event = self._signals[name] = asyncio.Event()
        return event

    def _on_checkout(self, dbapi_connection: Any, record: Any, *_: Any) -> None:
        idle_since = record.info.get(_IDLE_SINCE)
        if idle_since is not None and time.monotonic() - idle_since > _IDLE_PING_SECONDS:
            # Only a connection that sat idle may have been cut (server restart, idle timeout in a proxy);
            # under load connections come back within milliseconds and are not pinged.
            try:
                dbapi_connection.ping()
            except Exception as exc:
                # The pool discards this connection and checks out another (up to three attempts).
                raise DisconnectionError(f"stale pooled connection: {type(exc).__name__}") from exc
        in_use, capacity = self.pool_usage()
        # At most one warning a minute: under steady load the usage hovers around the threshold, and
        # warning at each crossing wrote a line per request.
        if capacity and in_use / capacity > 0.9 and time.monotonic() >= self._next_exhaustion_warning:
            log.warning("database pool nearly exhausted", in_use=in_use, capacity=capacity)
            self._next_exhaustion_warning = time.monotonic() + _EXHAUSTION_WARNING_INTERVAL_S

    def pool_usage(self) -> tuple[int, int]:
        """(connections checked out, pool size + max overflow)."""
        pool = self.engine.sync_engine.pool
        checked_out = int(getattr(pool, "checkedout", lambda: 0)())
        return checked_out, self.settings.pool_size + self.settings.max_overflow

    def pool_stats(self) -> dict[str, int]:
        """Pool gauges for /metrics."""
        pool = self.engine.sync_engine.pool
        return {
            "size": int(getattr(pool, "size", lambda: 0)()),
            "checked_out": int(getattr(pool, "checkedout", lambda: 0)()),
            "overflow": max(0, int(getattr(pool, "overflow", lambda: 0)())),
            "checked_in": int(getattr(pool, "checkedin", lambda: 0)()),
        }

    @asynccontextmanager
    async def unit_of_work(self) -> AsyncIterator[UnitOfWork]:
        """Open a unit of work behind the breaker; roll back whatever was not committed.

        Raises:
            CircuitOpenError: At once, while the breaker is open.
        """
        self.breaker.before_call()
        uow = UnitOfWork(factory=self.session_maker, engine=self.engine)
        failed = False
        try:
            yield uow
        except BaseException as exc:
            failed = True
            if is_database_unavailable(exc):
                self.breaker.record_failure()
            elif uow.used:
                self.breaker.record_success()
            else:
                self.breaker.release()
            raise
        else:
            if uow.used:
                self.breaker.record_success()
            else:
                self.breaker.release()
        finally:
            await uow._end(rollback=failed)

    async def ping(self) -> float:
        """Run ``SELECT 1`` outside the breaker and return its latency in ms (health checks).

        Callers bound it with ``asyncio.timeout``; the connect timeout bounds it too.
        """
        started = time.perf_counter()
        async with self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
        return (time.perf_counter() - started) * 1000

    async def dispose(self) -> None:
        """Close every pooled connection."""
        await self.engine.dispose()
