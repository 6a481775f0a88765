"""What each task kind does. A kind returns its output, or a step to run inside the task's completion
transaction (``emit``, and ``sql`` writes on the app's database): its effect then commits exactly once, with
the task's result. A ``sql`` write on another database (a query's ``dsn_env``) commits there before the
completion: at-least-once.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import decimal
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

import msgspec
from sqlalchemy import text

from omninode_bridge.core.breaker import CircuitOpenError
from omninode_bridge.core.db import Database, UnitOfWork, is_database_unavailable
from omninode_bridge.core.events import EventPublisher, TopicCatalog, new_envelope
from omninode_bridge.core.safe_errors import describe_error
from omninode_bridge.modules.workflow.contract import NamedQuery
from omninode_bridge.modules.workflow.services.http import SafeHttp
from omninode_bridge.modules.workflow.services.query_databases import QueryDatabases

__all__ = ["AiTasks", "InCompletion", "KindResult", "Kinds", "TaskFailure"]

#: Runs inside the completion transaction; returns the task's output.
InCompletion = Callable[[UnitOfWork], Awaitable[Any]]


class TaskFailure(RuntimeError):
    """A task failed with a message safe to store and show."""


class AiTasks(Protocol):
    """The port AI tasks go through (the metrics module's executor, handed in by ``build_modules``)."""

    async def execute(self, params: dict[str, Any], correlation_id: str) -> dict[str, Any]:
        """Run one AI task (routed, measured, stored by the metrics module); returns its answer and metrics.

        Raises:
            Exception: Every model failed, or the request was refused; the message is safe to show.
        """
        ...

    async def feedback(self, execution_id: str, score: float) -> None:
        """Report how the answer did downstream (1: the workflow used it and completed, 0: it failed)."""
        ...


@dataclass(frozen=True, slots=True)
class KindResult:
    output: Any = None
    in_completion: InCompletion | None = None


def _plain(value: Any) -> Any:
    """A database value as JSON (numbers stay numbers where they can)."""
    if isinstance(value, decimal.Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dt.datetime | dt.date | dt.time | uuid.UUID):
        return value.isoformat() if not isinstance(value, uuid.UUID) else str(value)
    if isinstance(value, bytes | memoryview):
        return bytes(value).hex()
    return value


class Kinds:
    """Runs tasks of each kind.

    Args:
        database: For ``sql`` tasks (a READ ONLY transaction of their own).
        publisher: For ``emit`` tasks.
        catalog: Topics ``emit`` may publish to.
        http: The SSRF-safe client.
        queries: The named queries.
        ai: The AI port; None: ``ai`` tasks fail (no metrics module).
        query_databases: The databases of queries with a ``dsn_env``; None: no query has one.
    """

    def __init__(self, database: Database, publisher: EventPublisher, catalog: TopicCatalog, http: SafeHttp,
                 queries: dict[str, NamedQuery], ai: AiTasks | None,
                 query_databases: QueryDatabases | None = None) -> None:  # fmt: skip
        self.database = database
        self.query_databases = query_databases
        self.publisher = publisher
        self.catalog = catalog
        self.http = http
        self.queries = queries
        self.ai = ai

    async def run(self, kind: str, params: dict[str, Any], *, run_id: uuid.UUID, task_id: str, attempt: int,
                  timeout_s: float) -> KindResult:  # fmt: skip
        """Run one attempt of a task with its rendered ``params``.

        Raises:
            TaskFailure: The task failed (any other exception is classified by the engine).
        """
        if kind == "noop":
            return KindResult(params)
        if kind == "sleep":
            await asyncio.sleep(float(params.get("seconds", 0)))
            if attempt <= int(params.get("fail_times", 0)):
                raise TaskFailure(f"failing on purpose (attempt {attempt} of the first {params['fail_times']})")
            return KindResult({"slept": params.get("seconds", 0), "attempt": attempt})
        if kind == "http":
            return KindResult(await self.http.request(params, f"{run_id}:{task_id}", timeout_s))
        if kind == "sql":
            return await self._sql(params)
        if kind == "emit":
            return self._emit(params, run_id)
        if kind == "ai":
            if self.ai is None:
                raise TaskFailure("ai tasks need the metrics module")
            return KindResult(await self.ai.execute(params, str(run_id)))
        raise TaskFailure(f"unknown kind {kind}")

    async def _sql(self, params: dict[str, Any]) -> KindResult:
        query = self.queries.get(str(params.get("query")))
        if query is None:
            raise TaskFailure(f"no query named {params.get('query')!r} is declared")
        args = dict(params.get("args") or {})
        missing = query.parameters() - set(args)
        if missing:
            raise TaskFailure(f"query {query.name} needs parameters: {', '.join(sorted(missing))}")
        bound = {name: args[name] for name in query.parameters()}

        async def execute(uow: UnitOfWork) -> dict[str, Any]:
            # An int formatted by us: SET LOCAL takes no bind parameter.
            await uow.session.execute(text(f"SET LOCAL statement_timeout = {int(query.statement_timeout_ms)}"))
            result = await uow.session.execute(text(query.sql), bound)
            if not result.returns_rows:  # type: ignore[attr-defined]  # a CursorResult
                return {"rows": [], "row_count": result.rowcount}  # type: ignore[attr-defined]  # a CursorResult
            rows = result.mappings().fetchmany(query.row_limit + 1)
            truncated = len(rows) > query.row_limit
            out = [{k: _plain(v) for k, v in row.items()} for row in rows[: query.row_limit]]
            return {"rows": out, "row_count": len(out), "truncated": truncated}

        if query.dsn_env is None:
            if not query.read_only:
                return KindResult(in_completion=execute)
            async with self.database.unit_of_work() as uow:
                await uow.session.execute(text("SET TRANSACTION READ ONLY"))
                try:
                    return KindResult(await execute(uow))
                finally:
                    await uow.rollback()
        return KindResult(await self._sql_elsewhere(query, execute))

    async def _sql_elsewhere(self, query: NamedQuery, execute: InCompletion) -> Any:
        """Run ``query`` on the database its ``dsn_env`` names: read-only as on the app's database; a write
        committed in its own transaction there, before the task's completion (at-least-once).

        Raises:
            TaskFailure: The database is unreachable or refused the query; the message is a classification,
                never the driver's text (a connection error's may carry the URL).
        """
        variable = str(query.dsn_env)
        if self.query_databases is None:
            raise TaskFailure(f"query {query.name}: no database is configured for {variable}")
        try:
            database = self.query_databases.get(variable)
        except KeyError:
            raise TaskFailure(f"query {query.name}: no database is configured for {variable}") from None
        try:
            async with database.unit_of_work() as uow:
                if query.read_only:
                    await uow.session.execute(text("SET TRANSACTION READ ONLY"))
                    try:
                        return await execute(uow)
                    finally:
                        await uow.rollback()
                output = await execute(uow)
                await uow.commit()
                return output
        except TaskFailure:
            raise
        except CircuitOpenError:
            raise TaskFailure(f"query {query.name}: the database of {variable} is unavailable (circuit open)") from None
        except Exception as exc:
            # ``from None``: the chain would carry the driver's text into logs; the classification is enough.
            unavailable = is_database_unavailable(exc)
            reason = f"unavailable ({describe_error(exc)})" if unavailable else describe_error(exc)
            raise TaskFailure(f"query {query.name} on the database of {variable}: {reason}") from None

    def _emit(self, params: dict[str, Any], run_id: uuid.UUID) -> KindResult:
        topic = str(params.get("topic"))
        try:
            self.catalog.topic(topic)
        except Exception as exc:
            raise TaskFailure(f"topic {topic!r} is not in the catalog") from exc
        payload = params.get("payload")
        body = payload if isinstance(payload, dict) else {"value": payload}
        envelope = new_envelope(event_type=str(params.get("event_type")), payload=body,
                                correlation_id=str(run_id))  # fmt: skip

        async def stage(uow: UnitOfWork) -> dict[str, Any]:
            await self.publisher.publish(uow, topic, envelope)
            return {"event_id": str(envelope.event_id), "topic": topic}

        return KindResult(in_completion=stage)


def output_size(value: Any) -> int:
    """Bytes of the output's JSON."""
    return len(msgspec.json.encode(value))
