"""Services of the metrics module."""

from __future__ import annotations

from omninode_bridge.modules.metrics.services.coordination import Coordination
from omninode_bridge.modules.metrics.services.dashboard import series
from omninode_bridge.modules.metrics.services.executor import ModelExecutor
from omninode_bridge.modules.metrics.services.plan import ExecutionFailed, Plan, Redact
from omninode_bridge.modules.metrics.services.store import MetricsStore, stats_of_row
from omninode_bridge.modules.metrics.services.upstream import UpstreamClient

__all__ = [
    "Coordination",
    "ExecutionFailed",
    "MetricsStore",
    "ModelExecutor",
    "Plan",
    "Redact",
    "UpstreamClient",
    "series",
    "stats_of_row",
]
