"""Unit tests: pure logic, no servers. This conftest enforces it.

Every unit test runs with network connections refused (any TCP/UDP ``connect``: PostgreSQL, Redis, Kafka
and the app's own ports alike) and with ``EmbeddedStack.start`` refused, and fails when its body takes more
than :data:`MAX_CPU_SECONDS` of CPU or :data:`MAX_WALL_SECONDS` of wall time. ``settings`` here points at a
closed port. The embedded-stack fixtures are defined in ``tests/integration/conftest.py``, which pytest does
not load for tests under ``tests/unit``, so asking for ``stack`` or ``client`` here is an error.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Generator
from typing import Any

import pytest

from omninode_bridge.embedded import EmbeddedStack
from omninode_bridge.settings import Settings
from tests.support import offline_settings

# The per-test budget. CPU time is what a test costs and does not grow when other processes load the
# machine; the wall-clock bound catches a test that waits (a sleep, a timeout) instead of computing.
MAX_CPU_SECONDS = 1.0
MAX_WALL_SECONDS = 10.0

_NETWORK_FAMILIES = {socket.AF_INET, socket.AF_INET6}


class ServerUseError(AssertionError):
    """A unit test tried to reach a server or start the embedded stack."""


def _refuse_connect(real: Any) -> Any:
    def connect(self: socket.socket, address: Any) -> Any:
        if self.family in _NETWORK_FAMILIES:
            raise ServerUseError(f"unit tests use no servers: connect to {address!r} refused (see tests/integration)")
        return real(self, address)

    return connect


def _refuse_stack(self: EmbeddedStack) -> None:
    raise ServerUseError("unit tests use no servers: EmbeddedStack.start refused (move it to tests/integration)")


@pytest.fixture(autouse=True)
def _no_servers(monkeypatch: pytest.MonkeyPatch) -> None:
    """Refuse network connections and the embedded stack for the duration of each unit test."""
    monkeypatch.setattr(socket.socket, "connect", _refuse_connect(socket.socket.connect))
    monkeypatch.setattr(socket.socket, "connect_ex", _refuse_connect(socket.socket.connect_ex))
    monkeypatch.setattr(EmbeddedStack, "start", _refuse_stack)


@pytest.fixture
def settings() -> Settings:
    """Test settings pointing at a closed port, for code that takes settings but must not connect."""
    return offline_settings()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, object, object]:
    """Fail a unit test whose body computes or waits too long (slow logic belongs elsewhere)."""
    cpu, wall = time.process_time(), time.perf_counter()
    result = yield
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    if cpu > MAX_CPU_SECONDS or wall > MAX_WALL_SECONDS:
        budget = f"{MAX_CPU_SECONDS}s CPU, {MAX_WALL_SECONDS}s wall"
        pytest.fail(
            f"{item.nodeid} took {cpu:.2f}s CPU, {wall:.2f}s wall; a unit test stays under {budget}", pytrace=False
        )
    return result
