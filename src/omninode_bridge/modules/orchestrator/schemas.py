"""The orchestrator's contract (with its subcontracts) and the workflow records it returns."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated, Any, Literal

import msgspec

from omninode_bridge.core.contracts import ContractVersion
from omninode_bridge.core.fsm import FsmSpec

__all__ = [
    "BreakerSpec",
    "EventTypeSpec",
    "FsmTransition",
    "Lifecycle",
    "OrchestratorContract",
    "RoutedServiceSpec",
    "RoutingSpec",
    "StepSpec",
    "WorkflowCoordinationSpec",
    "WorkflowExecution",
    "WorkflowFsmSpec",
    "WorkflowStep",
]

StepType = Literal["validation", "routing", "compute", "effect"]


class StepSpec(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """One workflow step: its handler is looked up by ``name``; a routing step calls ``service``."""

    name: str
    type: StepType
    timeout_ms: Annotated[int, msgspec.Meta(ge=1)]
    optional: bool = False
    service: str | None = None


class WorkflowCoordinationSpec(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    steps: Annotated[list[StepSpec], msgspec.Meta(min_length=1)]


class BreakerSpec(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    failure_threshold: Annotated[int, msgspec.Meta(ge=1)] = 5
    reset_timeout_ms: Annotated[int, msgspec.Meta(ge=1)] = 30_000


class RoutedServiceSpec(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """A service the orchestrator calls; an unset ``url`` disables it."""

    name: str
    url: str | None = None
    path: str = "/"
    health_check_path: str = "/health"
    optional: bool = False
    timeout_ms: Annotated[int, msgspec.Meta(ge=1)] = 2000
    retries: Annotated[int, msgspec.Meta(ge=0, le=10)] = 0
    retry_backoff_ms: Annotated[int, msgspec.Meta(ge=0)] = 100
    circuit_breaker: BreakerSpec = msgspec.field(default_factory=BreakerSpec)


class RoutingSpec(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    services: list[RoutedServiceSpec] = []


class Lifecycle(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """The states a workflow moves through: initial -> running -> succeeded | failed."""

    running: str
    succeeded: str
    failed: str


class WorkflowFsmSpec(FsmSpec, forbid_unknown_fields=True, frozen=True):
    lifecycle: Lifecycle


class EventTypeSpec(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """Events the orchestrator publishes, and where; an event type not listed is not published."""

    topic: str
    events: list[str]


class OrchestratorContract(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """``contracts/orchestrator/contract.yaml`` with its subcontracts inlined."""

    contract_version: ContractVersion
    node_type: Literal["ORCHESTRATOR"]
    name: str
    version: str
    workflow_coordination: WorkflowCoordinationSpec
    routing: RoutingSpec
    fsm: WorkflowFsmSpec
    event_type: EventTypeSpec
    description: str = ""


class WorkflowStep(msgspec.Struct):
    """How one step of a workflow went."""

    name: str
    type: str
    status: Literal["completed", "failed", "skipped"]
    optional: bool
    duration_ms: float
    timeout_ms: int
    error: str | None = None
    output: dict[str, Any] = {}


class FsmTransition(msgspec.Struct):
    """One state change of a workflow."""

    from_state: str
    to_state: str
    at: dt.datetime
    reason: str | None = None


class WorkflowExecution(msgspec.Struct):
    """A workflow run as recorded: its state, steps and transitions."""

    workflow_id: uuid.UUID
    workflow_type: str
    correlation_id: str
    namespace: str | None
    state: str
    degraded: bool
    started_at: dt.datetime
    completed_at: dt.datetime | None
    duration_ms: float | None
    error: str | None
    result: dict[str, Any]
    steps: list[WorkflowStep]
    transitions: list[FsmTransition]
