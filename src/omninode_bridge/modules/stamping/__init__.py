"""The stamping module: BLAKE3 hashes and signed O.N.E. v0.1 stamps, run through the orchestrator.

Public interface: the module registration, the event payloads (``events``), and the stamp block format
helpers other modules or tools may use to read stamps.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
from litestar.di import Provide

from omninode_bridge.core.module import Module, Resources
from omninode_bridge.modules.orchestrator import (
    RoutedService,
    WorkflowOrchestrator,
    check_handlers,
    load_orchestrator_contract,
)
from omninode_bridge.modules.stamping import events, schemas
from omninode_bridge.modules.stamping.controllers import StampingController
from omninode_bridge.modules.stamping.services import (
    HashPolicy,
    Keyring,
    StampingService,
    find_block,
    render_block,
    without_block,
)
from omninode_bridge.modules.stamping.settings import StampingSettings
from omninode_bridge.modules.stamping.state import StampingState

__all__ = [
    "Keyring",
    "StampingSettings",
    "build_module",
    "events",
    "find_block",
    "render_block",
    "schemas",
    "without_block",
]


def build_module(settings: StampingSettings, *, stamp_secret: str, max_json_bytes: int, contracts: Path) -> Module:
    """The stamping module.

    Args:
        settings: Its settings group.
        stamp_secret: The current signing secret (``OMNINODE_STAMP_SECRET``, a security setting).
        max_json_bytes: Largest JSON request body (``OMNINODE_MAX_BODY_BYTES``).
        contracts: The contracts directory (the stamping workflow's contract).
    """
    previous = [s.strip() for s in settings.previous_secrets.split(",") if s.strip()]
    service = StampingService(
        Keyring(stamp_secret, previous), HashPolicy(settings.inline_hash_bytes, settings.hash_threads)
    )
    state = StampingState(settings=settings, max_json_bytes=max_json_bytes, service=service)

    def check() -> None:
        # A contract step the stamping service has no handler for stops the app before it connects.
        check_handlers(load_orchestrator_contract(contracts, settings.onextree_url), StampingService.STEP_NAMES)

    @contextlib.asynccontextmanager
    async def lifespan(resources: Resources) -> AsyncIterator[None]:
        contract = load_orchestrator_contract(contracts, settings.onextree_url)
        async with httpx.AsyncClient(headers={"User-Agent": "omninode-bridge-orchestrator"}) as client:
            services = {spec.name: RoutedService(spec, client) for spec in contract.routing.services}
            orchestrator = WorkflowOrchestrator(contract, resources.publisher, services)
            orchestrator.check_handlers(service.handlers)  # a contract step without a handler stops start-up
            state.orchestrator.set(orchestrator)
            yield

    return Module(
        name="stamping",
        checks=[check],
        route_handlers=[StampingController],
        dependencies={
            "stamping": Provide(lambda: service, sync_to_thread=False),
            "stamping_state": Provide(lambda: state, sync_to_thread=False),
        },
        lifespans=[lifespan],
    )
