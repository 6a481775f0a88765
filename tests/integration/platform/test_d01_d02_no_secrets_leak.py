"""Issue 11, defects 1 and 2: a database error on a write path leaks nothing.

Each test forces a real PostgreSQL error on one write path with a trigger that fires only on rows carrying
the test's secret and raises a message quoting the whole row (``forced-failure: {...}``), which is harsher
than the NUL byte of the report: PostgreSQL's own text then holds every secret of the statement. Then no
log line the app emits (rendered exactly as the app renders it, at DEBUG), no response and no stored row
(every table) may contain the secrets, the trigger's text, or SQLAlchemy's statement.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import logging
import uuid
from collections.abc import AsyncIterator, Iterator

import httpx
import msgspec
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from omninode_bridge.core.db import Database
from omninode_bridge.core.observability import configure_logging
from omninode_bridge.embedded import EmbeddedStack
from omninode_bridge.platform.services import hash_key
from omninode_bridge.settings import Settings
from tests.integration.conftest import ADMIN_KEY, app_client, make_settings, wait_until

Client = AsyncTestClient[Litestar]
HEADERS = {"X-API-Key": ADMIN_KEY}
MARKER = "forced-failure"
#: Text that only a library's exception message carries: PostgreSQL's (via the trigger) and SQLAlchemy's.
LIBRARY_TEXT = (MARKER, "[SQL:", "parameters hidden", "row_to_json", "INSERT INTO")
FORCED = "database error (P0001 raise_exception)"

_FUNCTION = f"""
CREATE OR REPLACE FUNCTION test_d01_forced_failure() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF strpos(row_to_json(NEW)::text, TG_ARGV[0]) > 0 THEN
        RAISE EXCEPTION '{MARKER}: %', row_to_json(NEW)::text;
    END IF;
    RETURN NEW;
END $$
"""


def _secret(kind: str) -> str:
    return f"{kind}-s3cr3t-{uuid.uuid4().hex}"


class LogCapture(logging.Handler):
    """Every record the app logs, rendered by the app's own formatter (JSON, exceptions included)."""

    def __init__(self, formatter: logging.Formatter | None) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(formatter)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@pytest.fixture(scope="module")
async def app(stack: EmbeddedStack) -> AsyncIterator[Client]:
    """An app logging at DEBUG (so every line it could write is checked); the test settings come back after."""
    async with app_client(make_settings(stack, observability={"log_level": "DEBUG"})) as client:
        yield client
    configure_logging(make_settings(stack).observability)


@pytest.fixture(scope="module")
async def engine(settings: Settings) -> AsyncIterator[AsyncEngine]:
    """The test's own engine (DDL for the triggers, and reading every table)."""
    db = create_async_engine(settings.database.url or "")
    async with db.begin() as conn:
        await conn.execute(text(_FUNCTION))
    yield db
    await db.dispose()


@pytest.fixture
def logs(app: Client) -> Iterator[LogCapture]:
    """Captures the root logger's output, where structlog and every stdlib logger end up."""
    root = logging.getLogger()
    capture = LogCapture(root.handlers[0].formatter if root.handlers else None)
    root.addHandler(capture)
    try:
        yield capture
    finally:
        root.removeHandler(capture)


@contextlib.asynccontextmanager
async def failing(engine: AsyncEngine, table: str, marker: str) -> AsyncIterator[None]:
    """Make INSERT and UPDATE on ``table`` fail for rows containing ``marker`` (a hex/uuid string)."""
    assert all(c.isalnum() or c == "-" for c in marker)
    name = f"test_d01_{uuid.uuid4().hex[:12]}"
    async with engine.begin() as conn:
        await conn.execute(
            text(f"CREATE TRIGGER {name} BEFORE INSERT OR UPDATE ON {table} FOR EACH ROW "
                 f"EXECUTE FUNCTION test_d01_forced_failure('{marker}')")
        )  # fmt: skip
    try:
        yield
    finally:
        async with engine.begin() as conn:
            await conn.execute(text(f"DROP TRIGGER {name} ON {table}"))


async def _tables_containing(engine: AsyncEngine, needle: str) -> list[str]:
    """Every table with a row whose JSON form contains ``needle``."""
    async with engine.connect() as conn:
        tables = (await conn.execute(text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'"))).scalars()
        found = []
        for table in list(tables):
            hits = await conn.scalar(
                text(f'SELECT count(*) FROM "{table}" AS r WHERE strpos(to_jsonb(r)::text, :needle) > 0'),  # noqa: S608
                {"needle": needle},
            )
            if hits:
                found.append(table)
        return found


def _leaks(haystacks: list[str], needles: list[str]) -> list[tuple[str, str]]:
    return [(needle, hay[:300]) for hay in haystacks for needle in needles if needle in hay]


async def _assert_nothing_leaked(
    engine: AsyncEngine,
    logs: LogCapture,
    responses: list[httpx.Response],
    secrets: list[str],
    *,
    stored_legitimately: dict[str, list[str]] | None = None,
) -> None:
    # The failure is logged, as its classification.
    assert any(FORCED in line for line in logs.lines), "the forced failure was not logged"
    rendered = [*logs.lines, *(f"{r.headers}\n{r.text}" for r in responses)]
    assert _leaks(rendered, [*secrets, *LIBRARY_TEXT]) == []
    for secret in secrets:
        expected = (stored_legitimately or {}).get(secret, [])
        assert await _tables_containing(engine, secret) == expected, secret
    assert await _tables_containing(engine, MARKER) == []


def _is_internal_error(response: httpx.Response) -> None:
    assert response.status_code == 500, response.text
    problem = response.json()
    assert problem["type"].endswith("/internal-error")
    assert problem["detail"] == f"Internal error; quote correlation id {problem['correlation_id']} when reporting it."


async def test_d01_api_key_creation_failure_logs_no_name_prefix_or_hash(
    app: Client, engine: AsyncEngine, logs: LogCapture
) -> None:
    name = _secret("keyname")
    async with failing(engine, "platform_api_keys", name):
        response = await app.post("/admin/api-keys", json={"name": name, "scopes": ["hooks"]}, headers=HEADERS)
    _is_internal_error(response)
    await _assert_nothing_leaked(engine, logs, [response], [name])


async def test_d01_api_key_revocation_failure_logs_no_prefix_or_hash(
    app: Client, engine: AsyncEngine, logs: LogCapture
) -> None:
    created = await app.post("/admin/api-keys", json={"name": "d01-revoke", "scopes": ["hooks"]}, headers=HEADERS)
    key, key_id = created.json()["key"], created.json()["id"]
    async with failing(engine, "platform_api_keys", key_id):
        response = await app.delete(f"/admin/api-keys/{key_id}", headers=HEADERS)
    _is_internal_error(response)
    # The prefix is listed by GET /admin/api-keys on purpose; the failure must not show it, or the hash.
    await _assert_nothing_leaked(
        engine, logs, [response], [key, key[:12], hash_key(key)],
        stored_legitimately={key[:12]: ["platform_api_keys"], hash_key(key): ["platform_api_keys"]},
    )  # fmt: skip


async def test_d01_webhook_source_creation_failure_logs_no_secret(
    app: Client, engine: AsyncEngine, logs: LogCapture
) -> None:
    secret, description = _secret("whsecret"), _secret("description")
    body = {"name": f"d01-{uuid.uuid4().hex[:8]}", "scheme": "github", "secrets": [secret], "description": description}
    async with failing(engine, "hooks_sources", secret):
        response = await app.post("/hooks/sources", json=body, headers=HEADERS)
    _is_internal_error(response)
    await _assert_nothing_leaked(engine, logs, [response], [secret, description])


async def test_d01_webhook_secret_rotation_failure_logs_neither_secret(
    app: Client, engine: AsyncEngine, logs: LogCapture
) -> None:
    old, new = _secret("old"), _secret("new")
    name = f"d01-{uuid.uuid4().hex[:8]}"
    created = await app.post(
        "/hooks/sources", json={"name": name, "scheme": "github", "secrets": [old]}, headers=HEADERS
    )
    assert created.status_code == 201, created.text
    async with failing(engine, "hooks_sources", new):
        response = await app.patch(f"/hooks/sources/{name}", json={"secrets": [old, new]}, headers=HEADERS)
    _is_internal_error(response)
    await _assert_nothing_leaked(
        engine, logs, [created, response], [old, new], stored_legitimately={old: ["hooks_sources"]}
    )


async def test_d01_hook_and_batch_failures_log_no_data(app: Client, engine: AsyncEngine, logs: LogCapture) -> None:
    value = _secret("hookdata")
    hook = {"source": "d01-agent", "event_type": "pre_tool_use", "data": {"note": value, value: "as a key"}}
    async with failing(engine, "hook_events", value):
        single = await app.post("/hooks", json=hook, headers=HEADERS)
        batch = await app.post("/hooks/batch", json={"events": [hook, {**hook, "event_type": "post_tool_use"}]},
                               headers=HEADERS)  # fmt: skip
    _is_internal_error(single)
    _is_internal_error(batch)
    await _assert_nothing_leaked(engine, logs, [single, batch], [value])


async def test_d01_signed_webhook_failure_logs_no_secret_or_body(
    app: Client, engine: AsyncEngine, logs: LogCapture
) -> None:
    secret, value = _secret("ghsecret"), _secret("payload")
    name = f"d01-{uuid.uuid4().hex[:8]}"
    created = await app.post("/hooks/sources", json={"name": name, "scheme": "github", "secrets": [secret]},
                             headers=HEADERS)  # fmt: skip
    assert created.status_code == 201, created.text
    body = json.dumps({"action": "opened", "note": value}).encode()
    signature = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    headers = {"X-Hub-Signature-256": signature, "X-GitHub-Event": "push", "X-GitHub-Delivery": str(uuid.uuid4()),
               "Content-Type": "application/json"}  # fmt: skip
    async with failing(engine, "hook_events", value):
        response = await app.post(f"/hooks/{name}", content=body, headers=headers)
    _is_internal_error(response)
    await _assert_nothing_leaked(
        engine, logs, [response], [secret, value, signature], stored_legitimately={secret: ["hooks_sources"]}
    )


async def test_d02_stamp_failure_detail_and_workflow_errors_are_classified(
    app: Client, engine: AsyncEngine, logs: LogCapture
) -> None:
    value = _secret("stampmeta")
    body = {"content": f"d02 {uuid.uuid4()}\n", "namespace": f"d02-{uuid.uuid4().hex[:8]}", "metadata": {"k": value}}
    async with failing(engine, "stamping_stamps", value):
        response = await app.post("/stamp", json=body, headers=HEADERS)
    assert response.status_code == 500, response.text
    problem = response.json()
    assert problem["type"].endswith("/workflow-failed")
    assert problem["detail"] == f"The stamping workflow failed at step {problem['failed_step']}: {FORCED}"
    execution = await app.get(f"/orchestrator/workflows/{problem['workflow_id']}", headers=HEADERS)
    assert execution.status_code == 200
    assert execution.json()["state"] == "FAILED"
    assert execution.json()["error"] == FORCED
    assert execution.json()["steps"][-1]["error"] == FORCED
    assert execution.json()["transitions"][-1]["reason"] == FORCED
    await _assert_nothing_leaked(engine, logs, [response, execution], [value])


async def test_d02_codegen_status_failure_dead_letters_a_classified_error(
    app: Client, engine: AsyncEngine, logs: LogCapture
) -> None:
    value = _secret("codegen")
    session = uuid.uuid4()
    update = {"status": "in_progress", "progress_percent": 50, "current_step": "d02", "metadata": {"k": value}}
    async with failing(engine, "codegen_session_events", value):
        accepted = await app.post(f"/codegen/sessions/{session}/status", json=update, headers=HEADERS)
        assert accepted.status_code == 202, accepted.text
        event_id = accepted.json()["event_id"]

        async def dead_lettered() -> bool:
            async with engine.connect() as conn:
                return bool(await conn.scalar(text("SELECT count(*) FROM event_dead_letters WHERE event_id = :id"),
                                              {"id": event_id}))  # fmt: skip

        await wait_until(dead_lettered, timeout=60, interval=0.2, message="the failing status was not dead-lettered")
    async with engine.connect() as conn:
        dead = (await conn.execute(text("SELECT id, dlq_topic, error FROM event_dead_letters WHERE event_id = :id"),
                                   {"id": event_id})).one()  # fmt: skip
        logged = (await conn.scalars(text("SELECT error FROM event_logs WHERE event_id = :id AND error IS NOT NULL"),
                                     {"id": event_id})).all()  # fmt: skip
        dlq_error = text(
            "SELECT headers->>'error' FROM event_outbox WHERE headers->>'event_id' = :id AND headers ? 'error'"
        )
        headers = (await conn.scalars(dlq_error, {"id": event_id})).all()
    assert dead.error == FORCED
    assert logged == [FORCED]
    assert headers in ([FORCED], [])  # [] once the relay has shipped and pruned it
    overview = await app.get("/events/dlq", params={"dlq_topic": dead.dlq_topic, "limit": 500}, headers=HEADERS)
    assert [d["error"] for d in overview.json()["latest"] if d["id"] == dead.id] == [FORCED]

    async with failing(engine, "event_dead_letters", event_id):
        redrive = await app.post(f"/events/dlq/{dead.id}/redrive", headers=HEADERS)
    _is_internal_error(redrive)
    await _assert_nothing_leaked(engine, logs, [accepted, overview, redrive], [value])


async def test_d01_engine_echo_logs_statements_without_parameters(settings: Settings, logs: LogCapture) -> None:
    value = _secret("echo")
    engine_logger = logging.getLogger("sqlalchemy.engine.Engine")
    handlers = list(engine_logger.handlers)
    database = Database(msgspec.structs.replace(settings.database, echo=True))
    try:
        assert database.engine.sync_engine.hide_parameters
        async with database.engine.connect() as conn:
            assert await conn.scalar(text("SELECT CAST(:v AS text)"), {"v": value}) == value
    finally:
        await database.dispose()
        engine_logger.handlers[:] = handlers  # echo adds its own stdout handler; later tests need none
    assert any("SELECT CAST" in line for line in logs.lines)  # echo did log the statement...
    assert _leaks(logs.lines, [value]) == []  # ...but not its parameters
