"""Integration fixtures: the same embedded stack as ``omninode-bridge dev``, migrated with Alembic.

Tests talk to real PostgreSQL, Redis and Kafka-compatible servers; nothing here is a mock of them. The stack
starts when a test first asks for it (one per pytest session, per xdist worker), never at import. Unit tests
(``tests/unit``) cannot reach these fixtures; what both kinds share without servers is in ``tests/support``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import msgspec
import psutil
import pytest
import uvicorn
from litestar import Litestar
from litestar.testing import AsyncTestClient
from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from omninode_bridge.app import create_app
from omninode_bridge.core.db import Database
from omninode_bridge.core.module import Module
from omninode_bridge.core.tls import client_tls_context
from omninode_bridge.embedded import EmbeddedStack, free_port
from omninode_bridge.migrations import upgrade
from omninode_bridge.settings import Settings, load_settings

ADMIN_KEY = "onb_test_admin_key_0123456789abcdef"

#: Consumer groups on Tansu answer a join after half the session timeout: a short one lets each test app's
#: consumers join (and leave at shutdown) in ~1.5 s instead of 5 s. Heartbeats stay well inside it.
KAFKA_GROUP_ENV = {"OMNINODE_KAFKA_SESSION_TIMEOUT_MS": "3000", "OMNINODE_KAFKA_HEARTBEAT_INTERVAL_MS": "1000"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Files holding a ``slow`` test (extra processes: the CLI, ``serve``, ``dev``) run first.

    ``make test`` hands whole files to two xdist workers in collection order: a minute-long file handed out
    last leaves the other worker idle at the end; handed out first, the short files fill in around it.
    """
    slow = {item.path for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.path not in slow)  # stable: the order within each group stays


@pytest.fixture(scope="session")
def stack() -> Iterator[EmbeddedStack]:
    """PostgreSQL, Redis and Tansu from their wheels, in a temporary state directory."""
    directory = Path(tempfile.mkdtemp(prefix="omninode-test-"))
    embedded = EmbeddedStack(directory)
    embedded.start()
    assert embedded.postgres is not None
    upgrade(embedded.postgres.url)
    try:
        yield embedded
    finally:
        embedded.stop()
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def server_tmp_path() -> Iterator[Path]:
    """A new directory for a PostgreSQL data directory, removed afterwards; not under ``tmp_path``.

    Run as root, the embedded PostgreSQL runs as an unprivileged user, which must traverse the directory's
    parents: the stack opens them (g+rx, o+rx). Every pytest process (each xdist worker, the schemathesis run)
    sets its ``pytest-of-<user>`` root back to 0700 when it first asks for a temporary directory, so a stack under
    ``tmp_path`` could find its parent closed again: ``initdb`` failed with "Permission denied" (CI).
    """
    directory = Path(tempfile.mkdtemp(prefix="omninode-test-"))
    try:
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def own_stack(server_tmp_path: Path) -> Iterator[EmbeddedStack]:
    """A stack no other app uses, for tests that stop the broker or kill app processes.

    With the session's app also relaying, a restart of the in-memory broker can lose a record (see the
    relay's notes); these tests check one process's guarantees.
    """
    embedded = EmbeddedStack(server_tmp_path / "stack")
    embedded.start()
    assert embedded.postgres is not None
    upgrade(embedded.postgres.url)
    try:
        yield embedded
    finally:
        embedded.stop()


@functools.cache
def poll_client() -> httpx.Client:
    """One client for the polls of local servers starting up.

    ``httpx.get`` builds a client per call, and each client a TLS context (about 60 ms of CPU to load the CA
    bundle): polled every 0.1 s, that took half a core from the very process the test waited for.
    """
    return httpx.Client(timeout=1, verify=client_tls_context())


def make_settings(stack: EmbeddedStack, **overrides: dict[str, Any]) -> Settings:
    """Settings pointing at the test stack; ``overrides`` maps a group name to replaced fields."""
    urls = stack.urls
    base = load_settings(
        {
            "OMNINODE_ENV": "test",
            "OMNINODE_API_KEYS": f"test-admin:{ADMIN_KEY}:admin",
            "OMNINODE_RATE_LIMIT_REQUESTS": "100000",
            "OMNINODE_LOG_LEVEL": "WARNING",
            # The test services HTTP checks call are on loopback; and every app of a test process shares one
            # Redis, hence one elected registry checker, whichever app's settings it was built with.
            "OMNINODE_REGISTRY_ALLOW_PRIVATE_ADDRESSES": "true",
            **KAFKA_GROUP_ENV,
        },
        env_file=None,
    ).with_services(database_url=urls["database_url"], redis_url=urls["redis_url"], kafka=urls["kafka"])
    for group, fields in overrides.items():
        base = msgspec.structs.replace(base, **{group: msgspec.structs.replace(getattr(base, group), **fields)})
    return base


def start_serve(stack: EmbeddedStack, port: int, *, quiet: bool = True, **env: str) -> subprocess.Popen[bytes]:
    """``omninode-bridge serve`` as a real process on ``stack``, once ``/health/live`` answers.

    Args:
        stack: The servers it uses.
        port: Its HTTP port.
        quiet: Drop its output (a killed process's logs are noise in the test report).
        env: More ``OMNINODE_*`` variables (``OMNINODE_API_KEYS`` and ``OMNINODE_WORKERS`` default to the
            test admin key and one worker).
    """
    full = {k: v for k, v in os.environ.items() if not k.startswith("OMNINODE_")}
    full.update(
        OMNINODE_DATABASE_URL=stack.urls["database_url"],
        OMNINODE_REDIS_URL=stack.urls["redis_url"],
        OMNINODE_KAFKA_BOOTSTRAP_SERVERS=stack.urls["kafka"],
        OMNINODE_API_KEYS=f"serve-admin:{ADMIN_KEY}:admin",
        OMNINODE_PORT=str(port),
        OMNINODE_WORKERS="1",
        OMNINODE_LOG_LEVEL="WARNING",
        **KAFKA_GROUP_ENV,
    )
    full.update(env)
    output = subprocess.DEVNULL if quiet else None
    process = subprocess.Popen(
        [sys.executable, "-m", "omninode_bridge.cli", "serve"], env=full, stdout=output, stderr=output
    )
    deadline = time.monotonic() + 120  # app start-up on a busy machine (two workers took 56 s at load 8)
    while time.monotonic() < deadline:
        assert process.poll() is None, "serve exited"
        try:
            if poll_client().get(f"http://127.0.0.1:{port}/health/live").status_code == 200:
                return process
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    # Its worker processes too: a supervisor killed alone leaves them serving (and holding the port).
    for child in psutil.Process(process.pid).children(recursive=True):
        with contextlib.suppress(psutil.NoSuchProcess):
            child.kill()
    process.kill()
    raise AssertionError("serve did not start")


@pytest.fixture(scope="session")
def settings(stack: EmbeddedStack) -> Settings:
    """Default test settings (rate limit high enough not to interfere)."""
    return make_settings(stack)


@pytest.fixture
async def database(settings: Settings) -> AsyncIterator[Database]:
    """A database handle of the test settings, disposed afterwards (for tests below the HTTP API)."""
    db = Database(settings.database)
    try:
        yield db
    finally:
        await db.dispose()


@pytest.fixture(scope="session")
async def client(settings: Settings) -> AsyncIterator[AsyncTestClient[Litestar]]:
    """An in-process client of one app shared by the session (its lifespan runs once)."""
    async with AsyncTestClient(create_app(settings), timeout=30) as test_client:
        yield test_client


@pytest.fixture
def admin_headers() -> dict[str, str]:
    """Headers carrying the seeded admin key."""
    return {"X-API-Key": ADMIN_KEY}


@contextlib.asynccontextmanager
async def app_client(
    settings: Settings, modules: list[Module] | None = None
) -> AsyncIterator[AsyncTestClient[Litestar]]:
    """A client of a fresh app with its own settings (for tests that change configuration)."""
    async with AsyncTestClient(create_app(settings, modules=modules), timeout=30) as test_client:
        yield test_client


@contextlib.asynccontextmanager
async def live_server(settings: Settings) -> AsyncIterator[str]:
    """Serve an app with uvicorn on a free loopback port in this event loop; yields its base URL."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(settings),
            host="127.0.0.1",
            port=port,
            log_config=None,
            access_log=False,
            # Longer than any test's pause between two requests on one pooled connection: a server that closes
            # an idle keep-alive connection just as the client reuses it makes the client see a ReadError.
            timeout_keep_alive=60,
        )
    )
    task = asyncio.create_task(server.serve())
    try:
        await wait_until(lambda: _is_up(port), timeout=20, message="live server did not start")
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


async def _is_up(port: int) -> bool:
    try:
        async with httpx.AsyncClient(verify=client_tls_context()) as http:
            return (await http.get(f"http://127.0.0.1:{port}/health/live", timeout=1)).status_code == 200
    except httpx.HTTPError:
        return False


async def sql_rows(database_url: str, query: str, **params: Any) -> list[Any]:
    """Rows of one SQL query on its own short-lived engine (to look at what the app stored)."""
    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as conn:
            return list((await conn.execute(text(query), params)).all())
    finally:
        await engine.dispose()


async def clear_rate_limits(stack: EmbeddedStack) -> None:
    """Start from empty rate-limit windows (other tests counted requests in the same Redis)."""
    redis = Redis.from_url(stack.urls["redis_url"])
    keys = [key async for key in redis.scan_iter("ratelimit:*")]
    if keys:
        await redis.delete(*keys)
    await redis.aclose()


async def wait_until(
    condition: Callable[[], Awaitable[bool]], *, timeout: float, interval: float = 0.05, message: str = ""
) -> None:
    """Poll ``condition`` until it is true or ``timeout`` passes (tests never sleep blindly)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await condition():
            return
        await asyncio.sleep(interval)
    raise AssertionError(message or f"condition not met within {timeout}s")
