"""The stamping module: BLAKE3 hashes and signed O.N.E. v0.1 stamps, run through the orchestrator.

Public interface: the module registration, the event payloads (``events``), and the stamp block format
helpers other modules or tools may use to read stamps.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from litestar.di import Provide

from omninode_bridge.core.module import Module, Runtime
from omninode_bridge.modules.orchestrator import check_handlers, load_orchestrator_contract, orchestrator_of
from omninode_bridge.modules.stamping import events, schemas
from omninode_bridge.modules.stamping.controllers import StampingController
from omninode_bridge.modules.stamping.deps import provide_stamping
from omninode_bridge.modules.stamping.services import (
    HashPolicy,
    Keyring,
    StampingService,
    find_block,
    render_block,
    without_block,
)
from omninode_bridge.settings import Settings

__all__ = ["MODULE", "Keyring", "events", "find_block", "render_block", "schemas", "without_block"]


def build_service(runtime: Runtime) -> StampingService:
    """The stamping service for the app's settings."""
    settings = runtime.settings
    previous = [s.strip() for s in settings.stamping.previous_secrets.split(",") if s.strip()]
    return StampingService(
        Keyring(settings.security.stamp_secret, previous),
        HashPolicy(settings.stamping.inline_hash_bytes, settings.stamping.hash_threads),
    )


@contextlib.asynccontextmanager
async def _stamping(runtime: Runtime) -> AsyncIterator[None]:
    service = build_service(runtime)
    orchestrator_of(runtime).check_handlers(service.handlers)  # a contract step without a handler stops start-up
    runtime.extras["stamping"] = service
    yield


def _check(settings: Settings) -> None:
    # A contract step the stamping service has no handler for stops the app before it connects.
    check_handlers(load_orchestrator_contract(settings), StampingService.STEP_NAMES)


MODULE = Module(
    name="stamping",
    checks=[_check],
    route_handlers=[StampingController],
    dependencies={"stamping": Provide(provide_stamping, sync_to_thread=False)},
    lifespans=[_stamping],
)
