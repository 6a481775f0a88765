"""One proxied exchange: the request's headers and body go to an instance of the service, its answer streams
back, and the exchange is queued as a capture once the answer has been sent (built in a callback after the last
body message, never on the response's path)."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
import uuid
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from typing import Any

import msgspec

from omninode_bridge.core.errors import ProblemError
from omninode_bridge.core.http1 import ConnectionFailed, StreamPool
from omninode_bridge.modules.registry.services._captures import CaptureWriter, ToolCapture
from omninode_bridge.modules.registry.services._proxy import Call, InstanceCache, Upstream, forward

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
        pool: The process's one upstream connection pool.
        connect_timeout: Seconds a connection to an instance may take (then the next one is tried).
        timeout: Seconds each wait for the upstream may take (its answer, each chunk, taking the request body).
        cache: The instances of each service.
        captures: Where captures are queued.
        capture_bytes: Bytes of each body kept in a capture.
        max_body_bytes: Largest request body forwarded.
        capture: Whether exchanges are captured at all.
    """

    def __init__(
        self, pool: StreamPool, cache: InstanceCache, captures: CaptureWriter, *, connect_timeout: float,
        timeout: float, capture_bytes: int, max_body_bytes: int, capture: bool = True,
    ) -> None:  # fmt: skip
        self.capture = capture
        self.pool = pool
        self.connect_timeout = connect_timeout
        self.timeout = timeout
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
        began = _Began(time.time(), time.perf_counter(), service, method, raw_path, query, correlation_id, key_id)
        instances = await self.cache.candidates(service)
        out = _headers_out(headers, _DROPPED_IN)
        announced = next((v for k, v in out if k == b"content-length"), None)
        if announced is not None and announced.isdigit() and int(announced) > self.max_body_bytes:
            raise ProblemError(413, f"The proxy forwards bodies of at most {self.max_body_bytes} bytes.")
        out.append((b"x-correlation-id", correlation_id.encode()))
        sent = _Body(self.capture_bytes)
        content = self._counted(body, sent) if body is not None else None
        call = Call(method, raw_path, query, out, content, self.connect_timeout, self.timeout)
        try:
            upstream = await forward(self.pool, self.cache, service, call, instances)
        except ProblemError as exc:
            self._later(began, out, sent, None, None, exc.detail)
            raise
        response = upstream.response
        return Exchange(
            status=response.status,
            headers=_headers_out(response.headers, HOP_BY_HOP),
            body=self._answer(upstream, began, out, sent),
        )

    async def _counted(self, body: AsyncIterator[bytes], seen: _Body) -> AsyncIterator[bytes]:
        async for chunk in body:
            if chunk:
                seen.see(chunk)
                if seen.size > self.max_body_bytes:
                    raise ProblemError(413, f"The proxy forwards bodies of at most {self.max_body_bytes} bytes.")
                yield chunk

    async def _answer(
        self, upstream: Upstream, began: _Began, out: list[tuple[bytes, bytes]], sent: _Body
    ) -> AsyncIterator[bytes]:
        received = _Body(self.capture_bytes)
        error: str | None = None
        try:
            async for chunk in upstream.response.chunks():
                received.see(chunk)
                yield chunk
        except (ConnectionFailed, TimeoutError) as exc:  # the answer broke off: the client sees a cut body
            error = f"the upstream answer broke off: {type(exc).__name__}"
        finally:
            await upstream.response.aclose()
            self._later(began, out, sent, upstream, received, error)

    def _later(
        self, began: _Began, out: list[tuple[bytes, bytes]], sent: _Body, upstream: Upstream | None,
        received: _Body | None, error: str | None,
    ) -> None:  # fmt: skip
        """Queue the capture once the answer is out: it is built in a callback of its own, after the last body
        message has been written, so the client never waits for it."""
        if not self.capture:
            return
        duration_ms = (time.perf_counter() - began.clock) * 1000
        asyncio.get_running_loop().call_soon(self._finish, began, duration_ms, out, sent, upstream, received, error)

    def _finish(
        self, began: _Began, duration_ms: float, out: list[tuple[bytes, bytes]], sent: _Body,
        upstream: Upstream | None, received: _Body | None, error: str | None,
    ) -> None:  # fmt: skip
        started = dt.datetime.fromtimestamp(began.wall, dt.UTC)
        path_text = began.raw_path.decode("latin-1")
        request_type = next((v.decode("latin-1") for k, v in out if k == b"content-type"), None)
        capture = ToolCapture(
            service=began.service, tool=f"{began.service}:{began.method} {path_text}"[:255], call_id=uuid.uuid4().hex,
            correlation_id=began.correlation_id, started_at=started,
            finished_at=started + dt.timedelta(milliseconds=duration_ms), duration_ms=duration_ms, status=None,
            instance=None, attempts=0, key_id=began.key_id, error=error,
            request={"method": began.method, "path": path_text, "query": began.query.decode("latin-1"),
                     "headers": _captured_headers(out), **sent.captured(request_type)},
        )  # fmt: skip
        if upstream is not None and received is not None:
            headers = upstream.response.headers
            content_type = next((v.decode("latin-1") for k, v in headers if k.lower() == b"content-type"), None)
            capture.status, capture.attempts = upstream.response.status, upstream.attempts
            capture.instance = upstream.instance.node_id
            capture.response = {"headers": _captured_headers(headers), **received.captured(content_type)}
        self.captures.put(capture)


@dataclass(frozen=True, slots=True)
class _Began:
    """What a capture needs of the request, noted before it is forwarded."""

    wall: float
    clock: float
    service: str
    method: str
    raw_path: bytes
    query: bytes
    correlation_id: str
    key_id: uuid.UUID | None
