"""Captures of proxied calls: what one exchange was, the port they leave the registry through
(:class:`ToolCaptureSink`, the hooks module's ingest behind ``build_modules``), and the bounded queue whose one
writer task hands them to the port in batches, off the response path.

Why a queue: the capture is written after the response has gone out, by a background writer that batches
(one transaction for up to :data:`BATCH` pairs), so the proxy's answer never waits for PostgreSQL and a busy
proxy does not cost a database round trip per call. The price: captures still queued when a process dies are
lost, and a full queue drops new ones; both are counted (``omninode_registry_proxy_captures_total``).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import structlog
from prometheus_client import Counter

__all__ = ["BATCH", "CaptureWriter", "ToolCapture", "ToolCaptureSink", "captures_total"]

log = structlog.get_logger(__name__)
#: Captures written in one transaction at most.
BATCH = 500
#: How long the writer lets captures gather after the first one: a busy proxy writes one transaction per
#: interval instead of one per call (the response never waits for it; only the capture's visibility does).
LINGER_SECONDS = 0.05
captures_total = Counter(
    "omninode_registry_proxy_captures", "Proxy captures by outcome (written, dropped, failed).", ["outcome"]
)


@dataclass(slots=True)
class ToolCapture:
    """One proxied exchange: a tool call of ``tool`` (service and route) from ``started_at`` to ``finished_at``.

    ``request`` and ``response`` hold the (not yet redacted) headers and the first bytes of the bodies as
    JSON-ready values; the port redacts before storing.
    """

    service: str
    tool: str
    call_id: str
    correlation_id: str
    started_at: dt.datetime
    finished_at: dt.datetime
    duration_ms: float
    status: int | None
    instance: str | None
    attempts: int
    request: dict[str, Any] = field(default_factory=dict)
    response: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    key_id: uuid.UUID | None = None

    def pre_data(self) -> dict[str, Any]:
        """The data of the ``pre_tool_use`` side: the request."""
        return {"service": self.service, **self.request}

    def post_data(self) -> dict[str, Any]:
        """The data of the ``post_tool_use`` side: the answer, its duration and outcome."""
        data: dict[str, Any] = {
            "service": self.service, "status": self.status, "duration_ms": round(self.duration_ms, 3),
            "instance": self.instance, "attempts": self.attempts,
            "success": self.status is not None and 200 <= self.status < 400, **self.response,
        }  # fmt: skip
        if self.error is not None:
            data["error"] = self.error
        return data


class ToolCaptureSink(Protocol):
    """Where captures go (the hooks module, handed in by ``build_modules``): one pre/post pair each."""

    async def record(self, captures: Sequence[ToolCapture]) -> None:
        """Store and publish each capture as a ``pre_tool_use``/``post_tool_use`` pair, durably (committed)."""
        ...


class CaptureWriter:
    """A bounded queue of captures and the one task that writes them through the sink.

    Args:
        sink: The port captures are written through.
        capacity: Captures that may wait; a full queue drops the new one (counted).
    """

    def __init__(self, sink: ToolCaptureSink, capacity: int) -> None:
        self.sink = sink
        self.queue: asyncio.Queue[ToolCapture] = asyncio.Queue(maxsize=capacity)
        self._idle = asyncio.Event()
        self._idle.set()

    def put(self, capture: ToolCapture) -> None:
        """Queue a capture without waiting (dropped, and counted, when the queue is full)."""
        try:
            self.queue.put_nowait(capture)
            self._idle.clear()
        except asyncio.QueueFull:
            captures_total.labels(outcome="dropped").inc()

    async def run(self) -> None:
        """Write queued captures in batches until cancelled."""
        while True:
            batch = [await self.queue.get()]
            if self.queue.qsize() < BATCH:
                await asyncio.sleep(LINGER_SECONDS)
            while len(batch) < BATCH and not self.queue.empty():
                batch.append(self.queue.get_nowait())
            await self._write(batch)
            if self.queue.empty():
                self._idle.set()

    async def _write(self, batch: list[ToolCapture]) -> None:
        try:
            await self.sink.record(batch)
        except asyncio.CancelledError:
            raise
        except Exception:  # the database is away: these are lost (counted), the next batch is tried
            captures_total.labels(outcome="failed").inc(len(batch))
            log.warning("registry: proxy captures not written", count=len(batch), exc_info=True)
        else:
            captures_total.labels(outcome="written").inc(len(batch))

    async def drain(self, seconds: float) -> None:
        """Wait until the queue is written (at most ``seconds``), then write what is left directly."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._idle.wait()
        left: list[ToolCapture] = []
        while not self.queue.empty():
            left.append(self.queue.get_nowait())
        if left:
            await self._write(left)
