"""The client IP of a request: the TCP peer, or what trusted reverse proxies say it is."""

from __future__ import annotations

import functools
import ipaddress

from litestar.types import Scope

from omninode_bridge.core.settings import trusted_networks

__all__ = ["ClientAddress"]


class ClientAddress:
    """Resolves a request's client IP, believing ``X-Forwarded-For`` only from trusted proxies.

    Args:
        trusted_proxies: The ``OMNINODE_TRUSTED_PROXIES`` value (IPs and CIDRs, comma-separated).
    """

    def __init__(self, trusted_proxies: str) -> None:
        self.source = trusted_proxies
        self._networks = trusted_networks(trusted_proxies)
        # Few distinct proxy and client addresses recur; parsing each once keeps the hot path cheap.
        self._classify = functools.lru_cache(maxsize=4096)(self._trust_of)

    def _trust_of(self, address: str) -> bool | None:
        """True for a trusted proxy, False for another address, None for something that is not an IP."""
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return None
        return any(ip in network for network in self._networks)

    def __call__(self, scope: Scope) -> str:
        """The client IP of ``scope`` (the TCP peer unless that peer is a trusted proxy)."""
        client = scope.get("client")
        peer: str = client[0] if client else "unknown"
        if not self._networks or not self._classify(peer):
            return peer
        hops: list[str] = []
        for name, value in scope["headers"]:
            if name == b"x-forwarded-for":
                hops.extend(value.decode("latin-1").split(","))
        address = peer
        for hop in map(str.strip, reversed(hops)):
            trust = self._classify(hop)
            if trust is None:
                break  # not an address: the last hop a trusted proxy vouched for stands
            address = hop
            if not trust:
                return hop
        return address
