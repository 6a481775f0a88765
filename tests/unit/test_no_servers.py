"""The unit conftest's guard: a unit test cannot reach a server or start the embedded stack."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import pytest

from omninode_bridge.embedded import EmbeddedStack
from tests.support import CLOSED_PORT
from tests.unit.conftest import ServerUseError


def test_tcp_connections_are_refused() -> None:
    with socket.socket() as sock, pytest.raises(ServerUseError, match="connect"):
        sock.connect(("127.0.0.1", CLOSED_PORT))
    with socket.socket(socket.AF_INET6) as sock, pytest.raises(ServerUseError):
        sock.connect_ex(("::1", CLOSED_PORT))


async def test_asyncio_connections_are_refused() -> None:
    with pytest.raises(ServerUseError):
        await asyncio.open_connection("127.0.0.1", CLOSED_PORT)


def test_local_socket_pairs_still_work() -> None:
    left, right = socket.socketpair()  # what event loops use to wake themselves
    with left, right:
        left.sendall(b"x")
        assert right.recv(1) == b"x"


def test_the_embedded_stack_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ServerUseError, match="EmbeddedStack"):
        EmbeddedStack(tmp_path / "state").start()
