"""Hook statistics: counts per source and event type, and tool call durations."""

from __future__ import annotations

from sqlalchemy import func, literal_column, select

from omninode_bridge.core.db import UnitOfWork
from omninode_bridge.modules.hooks import schemas
from omninode_bridge.modules.hooks.models import HookSession, SourceStat, ToolCall

__all__ = ["HookStatsService", "Namespaces"]

#: Which namespaces a caller sees: ``None`` is every namespace.
Namespaces = frozenset[str] | None


class HookStatsService:
    """Statistics over the hooks tables in the caller's unit of work."""

    def __init__(self, uow: UnitOfWork) -> None:
        self.uow = uow

    async def stats(self, *, source: str | None = None, namespaces: Namespaces = None) -> schemas.HookStats:
        """Counts per source and event type, and per tool the calls, errors and p50/p95/max durations.

        ``namespaces`` limits every figure to the caller's namespaces.
        """
        stats_query = (
            select(
                SourceStat.source,
                SourceStat.event_type,
                func.sum(SourceStat.count).label("total"),  # not "count": Row.count is also a tuple method
                func.max(SourceStat.last_seen).label("last_seen"),
            )
            .group_by(SourceStat.source, SourceStat.event_type)
            .order_by(SourceStat.source, SourceStat.event_type)
        )
        if source is not None:
            stats_query = stats_query.where(SourceStat.source == source)
        if namespaces is not None:
            stats_query = stats_query.where(SourceStat.namespace.in_(namespaces))
        counts = (await self.uow.session.execute(stats_query)).all()
        duration = ToolCall.duration_ms
        # A literal, not a parameter: PostgreSQL must see the same expression in SELECT and GROUP BY.
        tool = func.coalesce(ToolCall.tool_name, literal_column("'(unknown)'"))
        tools_query = (
            select(
                tool.label("tool_name"),
                func.count().label("calls"),
                func.count(duration).label("completed"),
                func.count().filter(ToolCall.outcome == "error").label("errors"),
                func.percentile_cont(0.5).within_group(duration).label("p50"),
                func.percentile_cont(0.95).within_group(duration).label("p95"),
                func.max(duration).label("max"),
            )
            .group_by(tool)
            .order_by(tool)
        )
        if source is not None:
            tools_query = tools_query.where(ToolCall.source == source)
        if namespaces is not None:
            tools_query = tools_query.where(ToolCall.namespace.in_(namespaces))
        tools = (await self.uow.session.execute(tools_query)).all()
        sessions_query = select(func.count()).select_from(HookSession)
        if source is not None:
            sessions_query = sessions_query.where(HookSession.source == source)
        if namespaces is not None:
            sessions_query = sessions_query.where(HookSession.namespace.in_(namespaces))
        sessions_total = await self.uow.session.scalar(sessions_query)
        return schemas.HookStats(
            sources=[
                schemas.SourceStat(source=c.source, event_type=c.event_type, count=int(c.total), last_seen=c.last_seen)
                for c in counts
            ],
            tools=[
                schemas.ToolStat(
                    tool_name=t.tool_name,
                    calls=t.calls,
                    completed=t.completed,
                    errors=t.errors,
                    p50_ms=_round(t.p50),
                    p95_ms=_round(t.p95),
                    max_ms=_round(t.max),
                )
                for t in tools
            ],
            events_total=sum(int(c.total) for c in counts),
            sessions_total=int(sessions_total or 0),
        )


def _round(value: float | None) -> float | None:
    return round(float(value), 3) if value is not None else None
