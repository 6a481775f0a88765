"""Unit tests: pure logic, no servers. This conftest enforces it.

Every unit test runs with network connections refused (any TCP/UDP ``connect``: PostgreSQL, Redis, Kafka
and the app's own ports alike) and with ``EmbeddedStack.start`` refused, and fails when its call takes longer
than :data:`MAX_SECONDS`. ``settings`` here points at a closed port. The embedded-stack fixtures are defined
in ``tests/integration/conftest.py``, which pytest does not load for tests under ``tests/unit``, so asking
for ``stack`` or ``client`` here is an error.
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

# The per-test budget: unit tests take milliseconds; the margin covers a loaded 2-core CI machine.
MAX_SECONDS = 2.0

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
    """Fail a unit test whose body took longer than :data:`MAX_SECONDS` (slow logic belongs elsewhere)."""
    started = time.perf_counter()
    result = yield
    elapsed = time.perf_counter() - started
    if elapsed > MAX_SECONDS:
        pytest.fail(f"{item.nodeid} took {elapsed:.2f}s; a unit test must stay under {MAX_SECONDS}s", pytrace=False)
    return result
