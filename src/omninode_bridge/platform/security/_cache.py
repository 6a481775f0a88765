"""The in-process cache of verified API keys."""

from __future__ import annotations

import time
from typing import Any

from omninode_bridge.platform import schemas


class AuthCache:
    """Verified keys by hash, each for ``ttl`` seconds."""

    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        self._entries: dict[str, tuple[schemas.Principal, float]] = {}

    def get(self, digest: str) -> schemas.Principal | None:
        entry = self._entries.get(digest)
        if entry is None:
            return None
        principal, expires = entry
        if expires < time.monotonic():
            del self._entries[digest]
            return None
        return principal

    def put(self, digest: str, principal: schemas.Principal) -> None:
        if self.ttl > 0:
            self._entries[digest] = (principal, time.monotonic() + self.ttl)

    def drop_key(self, key_id: Any) -> None:
        """Forget a revoked key."""
        for digest, (principal, _) in list(self._entries.items()):
            if principal.key_id == key_id:
                del self._entries[digest]
