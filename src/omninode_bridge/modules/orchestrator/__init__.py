"""NodeBridgeOrchestrator: runs contract-driven workflows (``contracts/orchestrator/``).

Other modules call :func:`orchestrator_of` to get the running orchestrator and hand it their step handlers.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import httpx

from omninode_bridge.core.contracts import contracts_dir, load_contract
from omninode_bridge.core.module import Module, Runtime
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
from omninode_bridge.settings import Settings

__all__ = [
    "MODULE",
    "OrchestratorContract",
    "RoutedService",
    "ServiceUnavailableError",
    "StepHandler",
    "WorkflowFailedError",
    "WorkflowOrchestrator",
    "WorkflowResult",
    "WorkflowRun",
    "check_handlers",
    "events",
    "load_orchestrator_contract",
    "orchestrator_of",
    "schemas",
]

_EXTRAS_KEY = "orchestrator"


def load_orchestrator_contract(settings: Settings) -> OrchestratorContract:
    """The orchestrator contract of the configured contracts directory, validated.

    Raises:
        ContractError: The contract or a subcontract is missing or invalid.
    """
    directory = contracts_dir(settings.server.contracts_dir)
    variables = {"OMNINODE_ONEXTREE_URL": settings.stamping.onextree_url}
    return load_contract(directory / "orchestrator" / "contract.yaml", OrchestratorContract, variables)


def orchestrator_of(runtime: Runtime) -> WorkflowOrchestrator:
    """The orchestrator of a running app."""
    orchestrator: WorkflowOrchestrator = runtime.extras[_EXTRAS_KEY]
    return orchestrator


@contextlib.asynccontextmanager
async def _orchestrator(runtime: Runtime) -> AsyncIterator[None]:
    contract = load_orchestrator_contract(runtime.settings)
    async with httpx.AsyncClient(headers={"User-Agent": "omninode-bridge-orchestrator"}) as client:
        services = {spec.name: RoutedService(spec, client) for spec in contract.routing.services}
        runtime.extras[_EXTRAS_KEY] = WorkflowOrchestrator(contract, runtime.publisher, services)
        yield


def _check(settings: Settings) -> None:
    validate_contract(load_orchestrator_contract(settings))


MODULE = Module(
    name="orchestrator",
    route_handlers=[WorkflowExecutionController],
    lifespans=[_orchestrator],
    checks=[_check],
)
