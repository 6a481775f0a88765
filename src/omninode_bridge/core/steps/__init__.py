"""A small typed step engine: contract-declared steps run on a typed context, with an FSM and run records.

Independent of any module: a module declares its workflow contract (extending :class:`WorkflowContract`),
writes its steps as callables on its own context type, and runs them with a :class:`StepRunner`.
"""

from __future__ import annotations

from omninode_bridge.core.steps import messages
from omninode_bridge.core.steps.fsm import FsmSpec, IllegalTransitionError, StateMachine, StateSpec
from omninode_bridge.core.steps.models import FsmTransitionRow, WorkflowExecutionRow, WorkflowStepRow
from omninode_bridge.core.steps.records import Lead, RunRecord, RunRecorder, StepRecord, StepStatus, TransitionRecord
from omninode_bridge.core.steps.routing import RoutedService, ServiceUnavailableError
from omninode_bridge.core.steps.run import (
    LeadSkippedError,
    Recorder,
    Run,
    RunFailedError,
    RunResult,
    Step,
    StepTimeoutError,
)
from omninode_bridge.core.steps.runner import StepRunner, check_steps, validate_contract
from omninode_bridge.core.steps.specs import (
    BreakerSpec,
    EventTypeSpec,
    Lifecycle,
    RoutedServiceSpec,
    RoutingSpec,
    StepSpec,
    StepType,
    WorkflowContract,
    WorkflowCoordinationSpec,
    WorkflowFsmSpec,
)

__all__ = [
    "BreakerSpec",
    "EventTypeSpec",
    "FsmSpec",
    "FsmTransitionRow",
    "IllegalTransitionError",
    "Lead",
    "LeadSkippedError",
    "Lifecycle",
    "Recorder",
    "RoutedService",
    "RoutedServiceSpec",
    "RoutingSpec",
    "Run",
    "RunFailedError",
    "RunRecord",
    "RunRecorder",
    "RunResult",
    "ServiceUnavailableError",
    "StateMachine",
    "StateSpec",
    "Step",
    "StepRecord",
    "StepRunner",
    "StepSpec",
    "StepStatus",
    "StepTimeoutError",
    "StepType",
    "TransitionRecord",
    "WorkflowContract",
    "WorkflowCoordinationSpec",
    "WorkflowExecutionRow",
    "WorkflowFsmSpec",
    "WorkflowStepRow",
    "check_steps",
    "messages",
    "validate_contract",
]
