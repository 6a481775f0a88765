"""Access decisions written to the audit log with the request's context."""

from __future__ import annotations

from typing import Any

from litestar.connection import ASGIConnection
from litestar.types import Scope

from omninode_bridge.core.db import Database
from omninode_bridge.platform.identity import Actor
from omninode_bridge.platform.services import record_audit


class Auditor:
    """Writes access decisions with the request's context."""

    def __init__(self, database: Database, scope: Scope) -> None:
        self.database = database
        self.scope = scope

    async def __call__(self, action: str, outcome: str, **fields: Any) -> None:
        # Before authentication the connection has no principal: the key id, if any, comes in ``fields``.
        actor = Actor.from_request(ASGIConnection(self.scope))
        await record_audit(self.database, action, outcome, **{**actor.audit_fields(), **fields})
