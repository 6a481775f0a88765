"""``sql`` tasks on a database other than the app's: a named query's ``dsn_env`` names the variable holding its URL."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from sqlalchemy.engine import make_url

from omninode_bridge.app import create_app
from omninode_bridge.embedded import free_port
from tests.integration.conftest import app_client, make_settings, sql_rows
from tests.integration.workflow.test_kinds import run

VARIABLE = "OMNINODE_TEST_OTHER_DSN"
DOWN_VARIABLE = "OMNINODE_TEST_DOWN_DSN"
SECRET = "n0t-the-real-s3cret"

QUERIES = """
queries:
  - name: other_items
    sql: SELECT current_database() AS db, label FROM dsn_items ORDER BY id
    dsn_env: OMNINODE_TEST_OTHER_DSN
  - name: other_write_in_read_only
    sql: INSERT INTO dsn_items (label) VALUES (:label)
    dsn_env: OMNINODE_TEST_OTHER_DSN
  - name: other_put
    sql: INSERT INTO dsn_items (label) VALUES (:label) RETURNING label
    read_only: false
    dsn_env: OMNINODE_TEST_OTHER_DSN
  - name: other_bad_sql
    sql: SELECT missing_column FROM dsn_items
    dsn_env: OMNINODE_TEST_OTHER_DSN
  - name: down_items
    sql: SELECT 1 AS one
    dsn_env: OMNINODE_TEST_DOWN_DSN
  - name: app_count
    sql: SELECT count(*) AS runs FROM wf_runs
"""


def _plain(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


async def _other_database(app_url: str) -> str:
    """A new database on the app's server (one table, one row); returns its URL."""
    name = f"wf_other_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(_plain(app_url))
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')  # a name of ours: hex only
    finally:
        await admin.close()
    url = make_url(app_url).set(database=name).render_as_string(hide_password=False)
    other = await asyncpg.connect(_plain(url))
    try:
        await other.execute("CREATE TABLE dsn_items (id serial PRIMARY KEY, label text NOT NULL)")
        await other.execute("INSERT INTO dsn_items (label) VALUES ('from the other database')")
    finally:
        await other.close()
    return url


async def test_queries_run_on_the_database_their_variable_names(
    own_stack: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Its own stack: the session's app does not know these queries and would claim (and fail) the tasks.
    app_url = own_stack.urls["database_url"]
    other_url = await _other_database(app_url)
    other_name = make_url(other_url).database
    monkeypatch.setenv(VARIABLE, _plain(other_url))  # a plain postgresql:// URL is accepted
    # Nothing listens there; the password must not reach the task's error.
    monkeypatch.setenv(DOWN_VARIABLE, f"postgresql://someone:{SECRET}@127.0.0.1:{free_port()}/nowhere")
    queries = tmp_path / "queries.yaml"
    queries.write_text(QUERIES)
    settings = make_settings(own_stack, workflow={"queries_file": str(queries)})
    async with app_client(settings) as client:
        tasks = await run(
            client,
            {"id": "read", "kind": "sql", "params": {"query": "other_items"}},
            {"id": "put", "kind": "sql", "depends_on": ["read"],
             "params": {"query": "other_put", "args": {"label": "written by a task"}}},
            {"id": "app", "kind": "sql", "params": {"query": "app_count"}},
        )  # fmt: skip
        # Each failure in a run of its own: a failed task cancels its run's other tasks (on_failure: stop).
        failing = {
            "ro_write": {"query": "other_write_in_read_only", "args": {"label": "x"}},
            "bad": {"query": "other_bad_sql"},
            "down": {"query": "down_items"},
        }
        for task_id, params in failing.items():
            tasks |= await run(client, {"id": task_id, "kind": "sql", "params": params})
    read = tasks["read"]
    assert read["status"] == "completed", read["error"]
    assert read["output"]["rows"] == [{"db": other_name, "label": "from the other database"}]
    assert tasks["app"]["status"] == "completed", "queries without dsn_env still run on the app's database"

    assert tasks["ro_write"]["status"] == "failed"
    assert "25006" in tasks["ro_write"]["error"], tasks["ro_write"]["error"]
    assert VARIABLE in tasks["ro_write"]["error"]

    assert tasks["put"]["status"] == "completed", tasks["put"]["error"]
    assert tasks["put"]["output"]["rows"] == [{"label": "written by a task"}]
    labels = await sql_rows(other_url, "SELECT label FROM dsn_items ORDER BY id")
    assert labels == [("from the other database",), ("written by a task",)], "the write was committed there"

    assert tasks["bad"]["status"] == "failed"
    assert "42703" in tasks["bad"]["error"], tasks["bad"]["error"]

    down = tasks["down"]
    assert down["status"] == "failed"
    assert DOWN_VARIABLE in down["error"], down["error"]
    assert "unavailable" in down["error"], down["error"]
    for task in tasks.values():  # neither the password nor the URL reaches an error
        assert SECRET not in str(task["error"])
        assert "://" not in str(task["error"])


@pytest.mark.parametrize(
    "value", [None, "", "not a url " + SECRET, f"mysql://u:{SECRET}@h/db"], ids=["unset", "empty", "text", "mysql"]
)
def test_start_up_fails_when_the_variable_holds_no_url(
    stack: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, value: str | None
) -> None:
    if value is None:
        monkeypatch.delenv(VARIABLE, raising=False)
    else:
        monkeypatch.setenv(VARIABLE, value)
    queries = tmp_path / "queries.yaml"
    queries.write_text(QUERIES.replace(DOWN_VARIABLE, VARIABLE))
    settings = make_settings(stack, workflow={"queries_file": str(queries)})
    with pytest.raises(ValueError, match=VARIABLE) as raised:
        create_app(settings)
    message = str(raised.value)
    assert "other_items" in message
    assert SECRET not in message
    assert "://" not in message
