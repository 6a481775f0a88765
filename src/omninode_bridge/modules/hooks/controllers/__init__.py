"""The hooks module's controllers."""

from __future__ import annotations

from omninode_bridge.modules.hooks.controllers._ingest import HookIngestController
from omninode_bridge.modules.hooks.controllers._live import HookLiveController
from omninode_bridge.modules.hooks.controllers._queries import HookQueryController
from omninode_bridge.modules.hooks.controllers._sources import WebhookSourceController

__all__ = ["HookIngestController", "HookLiveController", "HookQueryController", "WebhookSourceController"]
