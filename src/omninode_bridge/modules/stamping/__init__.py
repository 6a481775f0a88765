"""The stamping module: BLAKE3 hashes and signed O.N.E. v0.1 stamps, made by its contract-driven workflow.

Public interface: the module registration (:func:`build_module`), the event payloads (``messages``,
``StampCreated``), and the stamp block format helpers other modules or tools may use to read stamps.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import httpx
from litestar.di import NamedDependency, Provide

from omninode_bridge.core.module import Module, Resources
from omninode_bridge.core.steps import RoutedService, RunRecorder, validate_contract
from omninode_bridge.core.tls import client_tls_context
from omninode_bridge.modules.stamping import messages, schemas
from omninode_bridge.modules.stamping.contract import load_stamping_contract
from omninode_bridge.modules.stamping.controllers import StampingController
from omninode_bridge.modules.stamping.messages import StampCreated
from omninode_bridge.modules.stamping.services import (
    HashPolicy,
    Keyring,
    StampingService,
    check_contract_steps,
    find_block,
    render_block,
    without_block,
)
from omninode_bridge.modules.stamping.settings import StampingSettings
from omninode_bridge.modules.stamping.state import StampingState

__all__ = [
    "Keyring",
    "StampCreated",
    "StampingSettings",
    "StampingState",
    "build_module",
    "find_block",
    "messages",
    "render_block",
    "schemas",
    "without_block",
]

#: The ``source`` of the workflow's events (as before stamping owned its workflow).
EVENT_SOURCE = "omninode-bridge.orchestrator"


def build_module(
    settings: StampingSettings, *, stamp_secret: str, max_json_bytes: int, contracts_dir: str | None
) -> Module:
    """The stamping module: its routes, its service dependency, its lifespan and its start-up check.

    Args:
        settings: Its settings group.
        stamp_secret: The current signing secret (``OMNINODE_STAMP_SECRET``, a security setting).
        max_json_bytes: Largest JSON request body (``OMNINODE_MAX_BODY_BYTES``).
        contracts_dir: The configured contracts directory (None: the repository's); the stamping workflow's
            contract is read from it.
    """
    previous = [s.strip() for s in settings.previous_secrets.split(",") if s.strip()]
    keyring = Keyring(stamp_secret, previous)
    policy = HashPolicy(settings.inline_hash_bytes, settings.hash_threads)
    state = StampingState(settings=settings, max_json_bytes=max_json_bytes)

    def check() -> None:
        # An inconsistent contract, or a step without a callable, stops the app before it connects.
        contract = load_stamping_contract(contracts_dir, settings.onextree_url)
        validate_contract(contract)
        check_contract_steps(contract)

    @contextlib.asynccontextmanager
    async def lifespan(resources: Resources) -> AsyncIterator[None]:
        contract = load_stamping_contract(contracts_dir, settings.onextree_url)
        async with httpx.AsyncClient(
            headers={"User-Agent": "omninode-bridge-orchestrator"}, verify=client_tls_context()
        ) as client:
            services = {spec.name: RoutedService(spec, client) for spec in contract.routing.services}
            recorder = RunRecorder(resources.database, resources.publisher, contract.event_type.topic, EVENT_SOURCE)
            state.service.set(StampingService(contract, keyring, policy, services, recorder))
            try:
                yield
            finally:
                state.service.set(None)

    return Module(
        name="stamping",
        checks=[check],
        route_handlers=[StampingController],
        dependencies={
            # The service is resolved from the state, not beside it: Litestar resolves independent
            # dependencies of a handler in an anyio task group per request (~10% of /hash's CPU).
            "stamping": Provide(_service_of, sync_to_thread=False),
            "stamping_state": Provide(lambda: state, sync_to_thread=False),
        },
        lifespans=[lifespan],
    )


def _service_of(stamping_state: NamedDependency[StampingState]) -> StampingService:
    return stamping_state.service.get()
