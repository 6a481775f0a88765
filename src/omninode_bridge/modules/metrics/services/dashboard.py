"""The models page's data: stored executions in time buckets per (task type, model), with the current
recommendation of each task type."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from typing import Any

from sqlalchemy import Float, Integer, bindparam, text

from omninode_bridge.core.db import UnitOfWork
from omninode_bridge.modules.metrics import schemas

__all__ = ["BUCKETS", "series"]

#: Time buckets the window is cut into.
BUCKETS = 24

# Executions (attempt 0: what the caller saw; model_id: the model that answered, or the last one tried) per
# bucket. One pass over the window on the (task_type, id) index's table; the averages are of answered ones.
_SERIES = text(
    """
SELECT task_type, model_id,
       LEAST(CAST(floor(extract(epoch FROM created_at - :since) / :width) AS integer), :last) AS bucket,
       count(*) AS executions,
       count(*) FILTER (WHERE outcome = 'success') AS successes,
       avg(quality_score) FILTER (WHERE outcome = 'success') AS quality,
       avg(latency_ms) FILTER (WHERE outcome = 'success') AS latency,
       avg(cost_usd) FILTER (WHERE outcome = 'success') AS cost
FROM metrics_executions
WHERE attempt = 0 AND created_at >= :since AND created_at < :until AND model_id IS NOT NULL
  AND (CAST(:task_type AS text) IS NULL OR task_type = :task_type)
GROUP BY 1, 2, 3
"""
).bindparams(
    bindparam("width", type_=Float),
    bindparam("last", type_=Integer),
)


def _round(value: Any, digits: int) -> float | None:
    return round(float(value), digits) if value is not None else None


async def series(
    uow: UnitOfWork, *, since: dt.datetime, until: dt.datetime, task_type: str | None, task_types: list[str]
) -> tuple[int, dict[str, tuple[int, list[schemas.ModelSeries]]]]:
    """Per task type (of ``task_types``, or only ``task_type``): its execution count and each model's series.

    Returns:
        The bucket width in seconds, and per task type (executions, models by traffic, largest first).
    """
    width = max(1.0, (until - since).total_seconds() / BUCKETS)
    params = {"since": since, "until": until, "width": width, "last": BUCKETS - 1, "task_type": task_type}
    rows = (await uow.session.execute(_SERIES, params)).all()
    totals: dict[tuple[str, int], int] = defaultdict(int)
    for row in rows:
        totals[(row.task_type, row.bucket)] += row.executions
    by_task: dict[str, dict[str, dict[int, Any]]] = defaultdict(lambda: defaultdict(dict))
    for row in rows:
        by_task[row.task_type][row.model_id][row.bucket] = row
    starts = [since + dt.timedelta(seconds=width * i) for i in range(BUCKETS)]
    out: dict[str, tuple[int, list[schemas.ModelSeries]]] = {}
    for name in [task_type] if task_type else task_types:
        models = by_task.get(name, {})
        task_total = sum(v for (t, _), v in totals.items() if t == name)
        listed = []
        for model, buckets in models.items():
            points = []
            for index, start in enumerate(starts):
                cell = buckets.get(index)
                if cell is None:
                    continue  # no execution of this model in the bucket: a gap in its line, not a zero
                points.append(schemas.SeriesPoint(
                    start=start, executions=cell.executions,
                    share=round(cell.executions / totals[(name, index)], 4),
                    success_rate=round(cell.successes / cell.executions, 4), quality_mean=_round(cell.quality, 4),
                    latency_mean_ms=_round(cell.latency, 3), cost_mean_usd=_round(cell.cost, 10),
                ))  # fmt: skip
            executions = sum(p.executions for p in points)
            listed.append(schemas.ModelSeries(
                model=model, executions=executions, share=round(executions / task_total, 4) if task_total else 0.0,
                points=points,
            ))  # fmt: skip
        listed.sort(key=lambda m: (-m.executions, m.model))
        out[name] = (task_total, listed)
    return round(width), out
