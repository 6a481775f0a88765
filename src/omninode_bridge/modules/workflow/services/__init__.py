"""The workflow module's services: validation and templates, the run use cases, the engine and its kinds."""

from __future__ import annotations

from omninode_bridge.modules.workflow.services.engine import Engine
from omninode_bridge.modules.workflow.services.http import HttpRefused, HttpTaskError, SafeHttp
from omninode_bridge.modules.workflow.services.kinds import AiTasks, Kinds, TaskFailure
from omninode_bridge.modules.workflow.services.live import LiveHub, LivePublisher
from omninode_bridge.modules.workflow.services.live_stream import run_events
from omninode_bridge.modules.workflow.services.query_databases import QueryDatabases
from omninode_bridge.modules.workflow.services.runs import ENDED, RunService
from omninode_bridge.modules.workflow.services.store import Claimed, EngineStore, backoff_seconds
from omninode_bridge.modules.workflow.services.templates import TemplateError, references, render
from omninode_bridge.modules.workflow.services.validation import find_cycle, topological_order, validate_definition
from omninode_bridge.modules.workflow.services.wake import Waker

__all__ = [
    "ENDED",
    "AiTasks",
    "Claimed",
    "Engine",
    "EngineStore",
    "HttpRefused",
    "HttpTaskError",
    "Kinds",
    "LiveHub",
    "LivePublisher",
    "QueryDatabases",
    "RunService",
    "SafeHttp",
    "TaskFailure",
    "TemplateError",
    "Waker",
    "backoff_seconds",
    "find_cycle",
    "references",
    "render",
    "run_events",
    "topological_order",
    "validate_definition",
]
