"""SSRF-safe HTTP for ``http`` tasks.

The host is resolved here and the connection made to the address that was checked (the URL's host is sent
as ``Host`` and as the TLS server name), so a name cannot resolve to a public address for the check and a
private one for the request. Every address that is not globally routable (loopback, private, link-local
such as the cloud metadata service 169.254.169.254, multicast, unspecified, reserved, shared) is refused
unless ``OMNINODE_WORKFLOW_HTTP_ALLOW`` lists the host or a network holding it. Redirects are followed by
hand, each hop checked again; only http and https are allowed.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import socket
from collections.abc import Sequence
from typing import Any

import httpx
import msgspec

from omninode_bridge.core.tls import client_tls_context

__all__ = ["HttpRefused", "HttpTaskError", "SafeHttp"]

_REDIRECTS = (301, 302, 303, 307, 308)
_MAX_HOPS = 5


class HttpTaskError(RuntimeError):
    """An http task failed (unexpected status, body too large, connection error)."""


class HttpRefused(HttpTaskError):
    """The URL is not allowed (scheme, or an address that is not public and not allowed)."""


IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class SafeHttp:
    """Makes http tasks' requests.

    Args:
        allow: Hosts or CIDRs allowed although not public.
        max_response_bytes: Largest body read.
    """

    def __init__(self, allow: Sequence[str], max_response_bytes: int) -> None:
        self.hosts = {entry.lower() for entry in allow if not _is_network(entry)}
        self.networks = [ipaddress.ip_network(entry, strict=False) for entry in allow if _is_network(entry)]
        self.max_response_bytes = max_response_bytes
        self.client = httpx.AsyncClient(
            follow_redirects=False, trust_env=False, verify=client_tls_context(trust_env=False)
        )

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self.client.aclose()

    def _allowed(self, host: str, address: IPAddress) -> bool:
        if host.lower() in self.hosts or any(address in network for network in self.networks):
            return True
        mapped = getattr(address, "ipv4_mapped", None)
        return bool(address.is_global and (mapped is None or mapped.is_global))

    async def _address(self, url: httpx.URL) -> IPAddress:
        if url.scheme not in ("http", "https"):
            raise HttpRefused(f"scheme {url.scheme or '(none)'} is not allowed; use http or https")
        host = url.host
        if not host:
            raise HttpRefused("the URL has no host")
        try:
            literal: IPAddress | None = ipaddress.ip_address(host)
        except ValueError:
            literal = None
        if literal is not None:
            candidates = [literal]
        else:
            try:
                infos = await asyncio.get_running_loop().getaddrinfo(host, url.port, type=socket.SOCK_STREAM)
            except OSError as exc:
                raise HttpTaskError(f"cannot resolve {host}") from exc
            candidates = [ipaddress.ip_address(info[4][0]) for info in infos]
        refused = [a for a in candidates if not self._allowed(host, a)]
        if refused or not candidates:
            raise HttpRefused(f"{host} resolves to {refused[0] if refused else 'nothing'}, which is not a public "
                              "address (allow it with OMNINODE_WORKFLOW_HTTP_ALLOW)")  # fmt: skip
        return candidates[0]

    async def request(self, params: dict[str, Any], idempotency_key: str, timeout_s: float) -> dict[str, Any]:
        """Make the request (following redirects, each checked); returns status, headers and body.

        Raises:
            HttpRefused: The URL or a redirect target is not allowed.
            HttpTaskError: The status is not expected, the body too large, or the connection failed.
        """
        method = str(params.get("method", "GET"))
        url = httpx.URL(str(params["url"]))
        limit = int(params.get("max_response_bytes") or self.max_response_bytes)
        headers = {str(k): str(v) for k, v in (params.get("headers") or {}).items()}
        headers["Idempotency-Key"] = idempotency_key
        content: bytes | None = None
        if params.get("json") is not None:
            content = msgspec.json.encode(params["json"])
            headers.setdefault("Content-Type", "application/json")
        elif params.get("body") is not None:
            content = str(params["body"]).encode()
        for _ in range(_MAX_HOPS + 1):
            address = await self._address(url)
            host_header = url.host if url.port is None else f"{url.host}:{url.port}"
            target = url.copy_with(host=str(address))
            extensions = {"sni_hostname": url.host} if url.scheme == "https" else {}
            request = self.client.build_request(method, target, headers={**headers, "Host": host_header},
                                                content=content, timeout=timeout_s, extensions=extensions)  # fmt: skip
            try:
                response = await self.client.send(request, stream=True)
            except httpx.HTTPError as exc:
                raise HttpTaskError(f"{type(exc).__name__} calling {url.host}") from exc
            try:
                body = bytearray()
                async for chunk in response.aiter_bytes():
                    body += chunk
                    if len(body) > limit:
                        raise HttpTaskError(f"the response is over {limit} bytes")
            finally:
                await response.aclose()
            location = response.headers.get("location")
            if response.status_code in _REDIRECTS and location:
                url = url.join(location)
                if response.status_code == 303 or (response.status_code in (301, 302) and method == "POST"):
                    method, content = "GET", None
                continue
            return self._result(params, response, bytes(body))
        raise HttpTaskError(f"more than {_MAX_HOPS} redirects")

    @staticmethod
    def _result(params: dict[str, Any], response: httpx.Response, body: bytes) -> dict[str, Any]:
        expected = params.get("expect") or [200, 201, 202, 204]
        if response.status_code not in expected:
            raise HttpTaskError(f"HTTP {response.status_code} (expected {', '.join(map(str, expected))})")
        content_type = response.headers.get("content-type", "")
        value: Any = body.decode("utf-8", errors="replace")
        if "json" in content_type and body:
            # Served as JSON but not JSON: the text is the output.
            with contextlib.suppress(msgspec.DecodeError):
                value = msgspec.json.decode(body)
        return {"status": response.status_code, "content_type": content_type, "body": value}


def _is_network(entry: str) -> bool:
    try:
        ipaddress.ip_network(entry, strict=False)
    except ValueError:
        return False
    return True
