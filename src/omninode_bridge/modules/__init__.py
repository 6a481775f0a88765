"""Feature modules. Each is a package exporting ``MODULE``; the app registers exactly this list."""

from __future__ import annotations

from omninode_bridge.core.module import Module
from omninode_bridge.modules import codegen, eventlog, hooks, orchestrator, reducer, stamping

__all__ = ["MODULES"]

#: Feature modules in registration order; each issue that adds a module appends it here.
MODULES: list[Module] = [
    eventlog.MODULE,
    codegen.MODULE,
    hooks.MODULE,
    orchestrator.MODULE,
    stamping.MODULE,
    reducer.MODULE,
]
