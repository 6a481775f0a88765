"""The registry's app: private addresses allowed (checks and services run on loopback), fast checker ticks."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from omninode_bridge.embedded import EmbeddedStack, free_port
from tests.integration.conftest import app_client, make_settings


@pytest.fixture
async def registry_client(stack: EmbeddedStack) -> AsyncIterator[AsyncTestClient[Litestar]]:
    """An app whose registry may reach loopback addresses."""
    settings = make_settings(stack, registry={"allow_private_addresses": True, "checker_tick_seconds": 0.1})
    async with app_client(settings) as client:
        yield client


class HealthServer:
    """A real HTTP server on loopback whose /health answers ``status`` (changeable) and counts its calls."""

    def __init__(self) -> None:
        self.status = 200
        self.calls = 0
        self.port = free_port()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # http.server's name
                owner.calls += 1
                body = b"ok" if owner.status == 200 else b"database down"
                self.send_response(owner.status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> HealthServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def health_server() -> Iterator[HealthServer]:
    """A running :class:`HealthServer`."""
    with HealthServer() as server:
        yield server
