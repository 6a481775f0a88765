"""NodeBridgeOrchestrator: runs contract-driven workflows (``contracts/orchestrator/``).

A module that runs a workflow builds a :class:`WorkflowOrchestrator` over the contract
(:func:`load_orchestrator_contract`) with its own step handlers; this module serves the recorded runs.
"""

from __future__ import annotations

from pathlib import Path

from omninode_bridge.core.contracts import load_contract
from omninode_bridge.core.module import Module
from omninode_bridge.modules.orchestrator import events, schemas
from omninode_bridge.modules.orchestrator.controllers import WorkflowExecutionController
from omninode_bridge.modules.orchestrator.routing import RoutedService, ServiceUnavailableError
from omninode_bridge.modules.orchestrator.schemas import OrchestratorContract
from omninode_bridge.modules.orchestrator.services import (
    StepHandler,
    WorkflowFailedError,
    WorkflowOrchestrator,
    WorkflowResult,
    WorkflowRun,
    check_handlers,
    validate_contract,
)

__all__ = [
    "OrchestratorContract",
    "RoutedService",
    "ServiceUnavailableError",
    "StepHandler",
    "WorkflowFailedError",
    "WorkflowOrchestrator",
    "WorkflowResult",
    "WorkflowRun",
    "build_module",
    "check_handlers",
    "events",
    "load_orchestrator_contract",
    "schemas",
]


def load_orchestrator_contract(contracts: Path, onextree_url: str | None = None) -> OrchestratorContract:
    """The orchestrator contract of a contracts directory, validated.

    Args:
        contracts: The contracts directory.
        onextree_url: The OnexTree service its routing may call (``OMNINODE_ONEXTREE_URL``); unset: skipped.

    Raises:
        ContractError: The contract or a subcontract is missing or invalid.
    """
    variables = {"OMNINODE_ONEXTREE_URL": onextree_url}
    return load_contract(contracts / "orchestrator" / "contract.yaml", OrchestratorContract, variables)


def build_module(contracts: Path) -> Module:
    """The orchestrator module: the read API of recorded workflow runs; its check validates the contract."""

    def check() -> None:
        validate_contract(load_orchestrator_contract(contracts))

    return Module(name="orchestrator", route_handlers=[WorkflowExecutionController], checks=[check])
