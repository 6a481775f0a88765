"""The stamping module: BLAKE3 hashes and signed O.N.E. v0.1 stamps, made by its contract-driven workflow.

Public interface: the module registration, the event payloads (``messages``, ``StampCreated``), and the
stamp block format helpers other modules or tools may use to read stamps.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
from litestar.datastructures import State
from litestar.di import Provide

from omninode_bridge.core.db import Database
from omninode_bridge.core.events import EventPublisher
from omninode_bridge.core.module import Module, Runtime
from omninode_bridge.core.steps import RoutedService, RunRecorder, validate_contract
from omninode_bridge.modules.stamping import messages, schemas
from omninode_bridge.modules.stamping.contract import StampingContract, load_stamping_contract
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
from omninode_bridge.settings import Settings

__all__ = [
    "MODULE",
    "Keyring",
    "StampCreated",
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

# Today's per-app slot for the state (one app may run next to another in a process, e.g. in tests). The
# typed wiring captures the state in the closures of build_module instead; only _state_of changes then.
_STATE_KEY = "stamping"


@dataclass(frozen=True, slots=True)
class StampingState:
    """What the stamping lifespan builds for one running app."""

    service: StampingService


def _load_contract(settings: Settings) -> StampingContract:
    return load_stamping_contract(settings.server.contracts_dir, settings.stamping.onextree_url)


def build_service(
    settings: Settings,
    contract: StampingContract,
    client: httpx.AsyncClient,
    database: Database,
    publisher: EventPublisher,
) -> StampingService:
    """The stamping service: its keys, hashing policy, routed services and run recorder."""
    previous = [s.strip() for s in settings.stamping.previous_secrets.split(",") if s.strip()]
    return StampingService(
        contract,
        Keyring(settings.security.stamp_secret, previous),
        HashPolicy(settings.stamping.inline_hash_bytes, settings.stamping.hash_threads),
        {spec.name: RoutedService(spec, client) for spec in contract.routing.services},
        RunRecorder(database, publisher, contract.event_type.topic, EVENT_SOURCE),
    )


def _state_of(state: State) -> StampingState:
    stamping: StampingState = state.runtime.extras[_STATE_KEY]
    return stamping


def build_module() -> Module:
    """The stamping module: its routes, its service dependency, its lifespan and its start-up check."""

    def provide_stamping(state: State) -> StampingService:
        return _state_of(state).service

    @contextlib.asynccontextmanager
    async def lifespan(runtime: Runtime) -> AsyncIterator[None]:
        contract = _load_contract(runtime.settings)
        async with httpx.AsyncClient(headers={"User-Agent": "omninode-bridge-orchestrator"}) as client:
            service = build_service(runtime.settings, contract, client, runtime.database, runtime.publisher)
            runtime.extras[_STATE_KEY] = StampingState(service)
            yield

    def check(settings: Settings) -> None:
        # An inconsistent contract, or a step without a callable, stops the app before it connects.
        contract = _load_contract(settings)
        validate_contract(contract)
        check_contract_steps(contract)

    return Module(
        name="stamping",
        checks=[check],
        route_handlers=[StampingController],
        dependencies={"stamping": Provide(provide_stamping, sync_to_thread=False)},
        lifespans=[lifespan],
    )


MODULE = build_module()
