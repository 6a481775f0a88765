"""The contract blocks a step workflow is declared with: steps, routed services, FSM lifecycle, events.

A module's contract (e.g. stamping's ``contracts/stamping/contract.yaml``) extends :class:`WorkflowContract`
with what else it declares; the runner reads only these blocks.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from omninode_bridge.core.contracts import ContractVersion
from omninode_bridge.core.steps.fsm import FsmSpec

__all__ = [
    "BreakerSpec",
    "EventTypeSpec",
    "Lifecycle",
    "RoutedServiceSpec",
    "RoutingSpec",
    "StepSpec",
    "StepType",
    "WorkflowContract",
    "WorkflowCoordinationSpec",
    "WorkflowFsmSpec",
]

StepType = Literal["validation", "routing", "compute", "effect"]


class StepSpec(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """One step: its callable is looked up by ``name``; a routing step calls ``service``.

    ``timeout_ms`` bounds the step with all its attempts; ``retries`` extra attempts follow a failure
    (never a timeout) while time is left.
    """

    name: str
    type: StepType
    timeout_ms: Annotated[int, msgspec.Meta(ge=1)]
    optional: bool = False
    service: str | None = None
    retries: Annotated[int, msgspec.Meta(ge=0, le=10)] = 0


class WorkflowCoordinationSpec(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    steps: Annotated[list[StepSpec], msgspec.Meta(min_length=1)]


class BreakerSpec(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    failure_threshold: Annotated[int, msgspec.Meta(ge=1)] = 5
    reset_timeout_ms: Annotated[int, msgspec.Meta(ge=1)] = 30_000


class RoutedServiceSpec(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """A service a routing step calls; an unset ``url`` disables it."""

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
    """The states a run moves through: initial -> running -> succeeded | failed."""

    running: str
    succeeded: str
    failed: str


class WorkflowFsmSpec(FsmSpec, forbid_unknown_fields=True, frozen=True):
    lifecycle: Lifecycle


class EventTypeSpec(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """Events a run publishes, and where; an event type not listed is not published."""

    topic: str
    events: list[str]


class WorkflowContract(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """What the runner needs of a contract: its identity, steps, routed services, FSM and events."""

    contract_version: ContractVersion
    name: str
    version: str
    workflow_coordination: WorkflowCoordinationSpec
    fsm: WorkflowFsmSpec
    event_type: EventTypeSpec
    routing: RoutingSpec = msgspec.field(default_factory=RoutingSpec)
    description: str = ""
