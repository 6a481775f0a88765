"""Feature modules. Each is a package exporting ``MODULE``; the app registers exactly this list."""

from __future__ import annotations

from typing import Any

from omninode_bridge.core.module import Module
from omninode_bridge.modules import codegen, events, hooks, metrics, orchestrator, reducer, stamping
from omninode_bridge.settings import HooksSettings

__all__ = ["MODULES"]

#: Feature modules in registration order; each issue that adds a module appends it here.
MODULES: list[Module] = [
    events.MODULE,
    codegen.MODULE,
    hooks.MODULE,
    orchestrator.MODULE,
    stamping.MODULE,
    reducer.MODULE,
]


def _hooks_redaction() -> metrics.Redact:
    # Stored prompts are redacted like hooks (the hooks module's public redactor, default key list and
    # secret shapes); the typed wiring hands it the operator's hooks settings instead.
    redactor = hooks.Redactor.from_settings(HooksSettings())

    def redact(value: Any) -> Any:
        return redactor.redact(value)[0]

    return redact


MODULES.append(metrics.build_module(redact=_hooks_redaction()))
