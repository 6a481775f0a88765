"""One proxied exchange: the request's headers and body go to an instance of the service, its answer streams
back, and the exchange is queued as a capture once the answer has been sent."""

from __future__ import annotations

import datetime as dt
import time
import uuid
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from typing import Any

import httpx
import msgspec

from omninode_bridge.core.errors import ProblemError
from omninode_bridge.modules.registry.services._captures import CaptureWriter, ToolCapture
from omninode_bridge.modules.registry.services._proxy import InstanceCache, forward

__all__ = ["Exchange", "ProxyService"]

#: Headers of one connection (RFC 9110 7.6.1), never forwarded either way.
HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "proxy-connection", "te", "trailer",
     "transfer-encoding", "upgrade", "host"}
)  # fmt: skip
#: The bridge's own credentials: they open the bridge, and must never reach a service behind it.
OWN_AUTH = frozenset({"authorization", "x-api-key", "x-consul-token"})
# The correlation id is set anew (the request's own, which the bridge adopted when the client sent one).
_DROPPED_IN = HOP_BY_HOP | OWN_AUTH | {"x-correlation-id"}
_json = msgspec.json.Decoder()


def _headers_out(raw: Iterable[tuple[bytes, bytes]], drop: frozenset[str]) -> list[tuple[bytes, bytes]]:
    """``raw`` without ``drop`` and without the headers the ``Connection`` header names."""
    pairs = [(k.lower(), v) for k, v in raw]
    named = {t.strip().lower().decode("latin-1") for k, v in pairs if k == b"connection" for t in v.split(b",")}
    dropped = drop | named if named else drop
    return [(k, v) for k, v in pairs if k.decode("latin-1") not in dropped]


def _captured_headers(pairs: Iterable[tuple[bytes, bytes]]) -> dict[str, str]:
    headers: dict[str, str] = {}
    for key, value in pairs:
        name, text = key.decode("latin-1").lower(), value.decode("latin-1")
        headers[name] = f"{headers[name]}, {text}" if name in headers else text
    return headers


@dataclass(slots=True)
class _Body:
    """Counts a body as it passes and keeps its first ``limit`` bytes."""

    limit: int
    size: int = 0
    head: bytearray = field(default_factory=bytearray)

    def see(self, chunk: bytes) -> None:
        self.size += len(chunk)
        room = self.limit - len(self.head)
        if room > 0:
            self.head += chunk[:room]

    def captured(self, content_type: str | None) -> dict[str, Any]:
        """The body as a capture holds it: JSON when it is complete JSON, else text, else only its size."""
        out: dict[str, Any] = {"body_bytes": self.size}
        if not self.size:
            return out
        truncated = self.size > len(self.head)
        out["body_truncated"] = truncated
        data = bytes(self.head)
        if not truncated and content_type and "json" in content_type.lower():
            try:
                out["body"] = _json.decode(data)
                return out
            except msgspec.DecodeError:
                pass
        try:
            out["body"] = data.decode("utf-8")
        except UnicodeDecodeError:
            if truncated:  # cut inside a character
                try:
                    out["body"] = data[:-3].decode("utf-8", errors="strict") if len(data) > 3 else ""
                except UnicodeDecodeError:
                    out["body_encoding"] = "binary"
            else:
                out["body_encoding"] = "binary"
        return out


@dataclass(slots=True)
class Exchange:
    """The answer to stream back: status, headers (hop-by-hop removed) and the body's chunks."""

    status: int
    headers: list[tuple[bytes, bytes]]
    body: AsyncIterator[bytes]


class ProxyService:
    """Forwards requests to registered services and captures each exchange.

    Args:
        transport: The process's one upstream connection pool.
        timeout: Connect, read and write timeouts of every call.
        cache: The instances of each service.
        captures: Where captures are queued.
        capture_bytes: Bytes of each body kept in a capture.
        max_body_bytes: Largest request body forwarded.
        capture: Whether exchanges are captured at all.
    """

    def __init__(
        self, transport: httpx.AsyncHTTPTransport, timeout: httpx.Timeout, cache: InstanceCache,
        captures: CaptureWriter, *, capture_bytes: int, max_body_bytes: int, capture: bool = True,
    ) -> None:  # fmt: skip
        self.capture = capture
        self.transport = transport
        self.timeout = timeout.as_dict()
        self.cache = cache
        self.captures = captures
        self.capture_bytes = capture_bytes
        self.max_body_bytes = max_body_bytes

    async def exchange(
        self, *, service: str, method: str, raw_path: bytes, query: bytes, headers: Iterable[tuple[bytes, bytes]],
        body: AsyncIterator[bytes] | None, correlation_id: str, key_id: uuid.UUID | None,
    ) -> Exchange:  # fmt: skip
        """Send the request to an instance of ``service`` and return its answer, streaming.

        Args:
            service: The registered service name.
            method: The HTTP method.
            raw_path: The path below the service, as sent (percent-encoded).
            query: The query string, as sent.
            headers: The request's headers (raw ASGI pairs).
            body: The request body's chunks, or None when it has none.
            correlation_id: The request's correlation id (forwarded as ``X-Correlation-ID``).
            key_id: The API key that sent it (kept with the capture).

        Raises:
            ProblemError: 404/403/503 (see :meth:`InstanceCache.candidates`), 413 for a body over the limit,
                502/504 when no instance answered.
        """
        started, clock = dt.datetime.now(dt.UTC), time.perf_counter()
        instances = await self.cache.candidates(service)
        out = _headers_out(headers, _DROPPED_IN)
        announced = next((v for k, v in out if k == b"content-length"), None)
        if announced is not None and announced.isdigit() and int(announced) > self.max_body_bytes:
            raise ProblemError(413, f"The proxy forwards bodies of at most {self.max_body_bytes} bytes.")
        out.append((b"x-correlation-id", correlation_id.encode()))
        sent = _Body(self.capture_bytes)
        content = self._counted(body, sent) if body is not None else None
        request = httpx.Request(method, "http://upstream.invalid/", headers=out, content=content,
                                extensions={"timeout": self.timeout})  # fmt: skip
        path_text = raw_path.decode("latin-1")
        capture = ToolCapture(
            service=service, tool=f"{service}:{method} {path_text}"[:255], call_id=uuid.uuid4().hex,
            correlation_id=correlation_id, started_at=started, finished_at=started, duration_ms=0.0, status=None,
            instance=None, attempts=0, key_id=key_id,
            request={"method": method, "path": path_text, "query": query.decode("latin-1"),
                     "headers": _captured_headers(out)},
        )  # fmt: skip
        request_type = next((v.decode("latin-1") for k, v in out if k == b"content-type"), None)
        try:
            upstream = await forward(self.transport, self.cache, service, request, instances, raw_path, query)
        except ProblemError as exc:
            capture.error = exc.detail
            self._finish(capture, clock, sent, request_type, None, None)
            raise
        response = upstream.response
        capture.status, capture.attempts = response.status_code, upstream.attempts
        capture.instance = upstream.instance.node_id
        return Exchange(
            status=response.status_code,
            headers=_headers_out(response.headers.raw, HOP_BY_HOP),
            body=self._answer(response, capture, clock, sent, request_type),
        )

    async def _counted(self, body: AsyncIterator[bytes], seen: _Body) -> AsyncIterator[bytes]:
        async for chunk in body:
            if chunk:
                seen.see(chunk)
                if seen.size > self.max_body_bytes:
                    raise ProblemError(413, f"The proxy forwards bodies of at most {self.max_body_bytes} bytes.")
                yield chunk

    async def _answer(
        self, response: httpx.Response, capture: ToolCapture, clock: float, sent: _Body, request_type: str | None
    ) -> AsyncIterator[bytes]:
        received = _Body(self.capture_bytes)
        try:
            async for chunk in response.aiter_raw():
                received.see(chunk)
                yield chunk
        except httpx.HTTPError as exc:  # the answer broke off: the client sees a cut body, the capture says why
            capture.error = f"the upstream answer broke off: {type(exc).__name__}"
        finally:
            await response.aclose()
            self._finish(capture, clock, sent, request_type, response, received)

    def _finish(
        self, capture: ToolCapture, clock: float, sent: _Body, request_type: str | None,
        response: httpx.Response | None, received: _Body | None,
    ) -> None:  # fmt: skip
        if not self.capture:
            return
        capture.duration_ms = (time.perf_counter() - clock) * 1000
        capture.finished_at = capture.started_at + dt.timedelta(milliseconds=capture.duration_ms)
        capture.request |= sent.captured(request_type)
        if response is not None and received is not None:
            capture.response = {"headers": _captured_headers(response.headers.raw),
                                **received.captured(response.headers.get("content-type"))}  # fmt: skip
        self.captures.put(capture)
