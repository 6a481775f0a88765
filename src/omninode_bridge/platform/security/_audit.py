"""Access decisions written to the audit log with the request's context."""

from __future__ import annotations

from typing import Any

from litestar.types import Scope

from omninode_bridge.core.db import Database
from omninode_bridge.platform.services import record_audit


class Auditor:
    """Writes access decisions with the request's context."""

    def __init__(self, database: Database, scope: Scope, client_ip: str) -> None:
        self.database = database
        self.scope = scope
        self.client_ip = client_ip

    async def __call__(self, action: str, outcome: str, **fields: Any) -> None:
        await record_audit(
            self.database,
            action,
            outcome,
            client_ip=self.client_ip,
            method=self.scope.get("method"),
            path=self.scope["path"][:2048],
            correlation_id=self.scope.get("state", {}).get("correlation_id"),
            **fields,
        )
