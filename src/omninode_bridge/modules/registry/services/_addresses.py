"""Which addresses the registry may reach (HTTP checks, the proxy): only a node's own registered host, and
loopback, private, link-local and reserved ranges only when ``OMNINODE_REGISTRY_ALLOW_PRIVATE_ADDRESSES`` is on."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import urllib.parse

__all__ = ["AddressRefused", "check_address", "host_of", "registered_hosts"]


class AddressRefused(ValueError):
    """The target is not a registered address, or resolves to a range that is not allowed."""


def host_of(url: str) -> str:
    """The lower-case host of ``url`` (without brackets for IPv6)."""
    return (urllib.parse.urlsplit(url).hostname or "").lower()


def registered_hosts(address: str | None, url: str | None) -> set[str]:
    """The hosts a node registered: its ``address`` and the host of its ``url``."""
    hosts = {address.lower().strip("[]")} if address else set()
    if url:
        hosts.add(host_of(url))
    return hosts - {""}


def _blocked(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    return (
        ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_reserved or ip.is_multicast or (ip.is_unspecified)
    )


async def check_address(host: str, *, allow_private: bool) -> None:
    """Refuse ``host`` when any address it resolves to is in a blocked range (unless allowed).

    Raises:
        AddressRefused: Blocked, or it does not resolve.
    """
    if allow_private:
        return
    try:
        ips = [ipaddress.ip_address(host)]
    except ValueError:
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(host, None, type=socket.SOCK_STREAM)
        except OSError as exc:
            raise AddressRefused(f"{host} does not resolve") from exc
        ips = [ipaddress.ip_address(info[4][0]) for info in infos]
    for ip in ips:
        if _blocked(ip):
            raise AddressRefused(
                f"{host} resolves to {ip}, a private or reserved address "
                "(allowed only with OMNINODE_REGISTRY_ALLOW_PRIVATE_ADDRESSES)"
            )
