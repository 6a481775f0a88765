"""What the tests of the live views share: reading Server-Sent Events, and the headless Chromium they drive."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

__all__ = ["CHROMIUM", "CHROMIUM_ARGS", "require_chromium", "sse_messages"]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip


def require_chromium() -> None:
    """Fail (not skip) when the browser is missing: the live pages' acceptance needs it."""
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: `make test` installs Debian's chromium package (apt-get, as root)")


async def sse_messages(response: httpx.Response) -> AsyncIterator[dict[str, Any]]:
    """Parse SSE messages (``id``, ``event``, ``data``) from a streaming response; comments are skipped."""
    message: dict[str, Any] = {}
    async for line in response.aiter_lines():
        if not line:
            if "data" in message:
                yield message
            message = {}
        elif not line.startswith(":"):
            name, _, value = line.partition(":")
            message[name] = value.removeprefix(" ")
