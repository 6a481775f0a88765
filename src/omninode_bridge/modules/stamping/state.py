"""The stamping module's per-app state, built by its ``build_module`` and filled by its lifespan."""

from __future__ import annotations

from dataclasses import dataclass, field

from omninode_bridge.core.module import Started
from omninode_bridge.modules.stamping.services import StampingService
from omninode_bridge.modules.stamping.settings import StampingSettings

__all__ = ["StampingState"]


@dataclass(slots=True)
class StampingState:
    """What the stamping endpoints share in one app.

    Attributes:
        settings: The stamping settings group.
        max_json_bytes: Largest JSON request body (the server's ``OMNINODE_MAX_BODY_BYTES``).
        service: The stamping service (keys, hash policy, its workflow's runner), once started.
    """

    settings: StampingSettings
    max_json_bytes: int
    service: Started[StampingService] = field(default_factory=lambda: Started("the stamping service"))
