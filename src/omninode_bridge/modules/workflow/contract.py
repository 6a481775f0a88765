"""The named SQL queries ``sql`` tasks may run (``contracts/workflow/queries.yaml``), declared by an operator.

A request names a query and gives its bind parameters; SQL text never comes from a request. A query runs on the
app's database unless it names (``dsn_env``) an environment variable holding another database's URL.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated

import msgspec
import yaml
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from omninode_bridge.core.contracts import contracts_dir, load_yaml

__all__ = ["NamedQuery", "QueriesContract", "load_queries", "query_database_urls"]

_BIND = re.compile(r"(?<![:\w]):([A-Za-z_][A-Za-z0-9_]*)")


class NamedQuery(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, frozen=True):
    """One query: SQL with ``:name`` bind parameters, read-only unless declared otherwise.

    Attributes:
        dsn_env: The name of an environment variable holding the PostgreSQL URL of the database the query runs
            on (the URL, which may hold a password, never sits in the file); None: the app's database. It must
            be set when the app starts. A read-only query runs there as on the app's database (a READ ONLY
            transaction, the statement timeout, the row limit). A write query (``read_only: false``) cannot
            join the task's completion transaction there: it commits in a transaction of its own on that
            database just before the task's completion, so it is **at-least-once** (a process that dies in
            between has the task run again, and the write repeated). Writes on the app's database stay
            exactly-once.
    """

    name: Annotated[str, msgspec.Meta(pattern=r"^[a-z][a-z0-9_]{0,63}$")]
    sql: str
    description: str = ""
    read_only: bool = True
    row_limit: Annotated[int, msgspec.Meta(ge=1, le=100_000)] = 1000
    statement_timeout_ms: Annotated[int, msgspec.Meta(ge=1, le=3_600_000)] = 5000
    dsn_env: Annotated[str, msgspec.Meta(pattern=r"\A[A-Z][A-Z0-9_]{0,127}\Z")] | None = None

    def parameters(self) -> set[str]:
        """The bind parameter names of the SQL (``::type`` casts are not parameters)."""
        return set(_BIND.findall(self.sql))


class QueriesContract(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, frozen=True):
    queries: list[NamedQuery] = []

    def by_name(self) -> dict[str, NamedQuery]:
        """The queries by name."""
        return {q.name: q for q in self.queries}


def load_queries(path: str | None, contracts: str | None = None) -> QueriesContract:
    """The queries file (``OMNINODE_WORKFLOW_QUERIES_FILE``, else ``contracts/workflow/queries.yaml``).

    Raises:
        ValueError: The file does not parse, two queries share a name, or a query's ``dsn_env`` variable is
            unset, empty or no PostgreSQL URL.
    """
    file = Path(path) if path else contracts_dir(contracts) / "workflow" / "queries.yaml"
    if not file.is_file():
        return QueriesContract()
    try:
        contract = msgspec.convert(load_yaml(file.read_text()) or {}, QueriesContract)
    except (msgspec.ValidationError, yaml.YAMLError) as exc:
        raise ValueError(f"{file}: {exc}") from exc
    if len(contract.by_name()) != len(contract.queries):
        raise ValueError(f"{file}: two queries share a name")
    try:
        query_database_urls(contract)
    except ValueError as exc:
        raise ValueError(f"{file}: {exc}") from None
    return contract


def query_database_urls(contract: QueriesContract, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The URL each ``dsn_env`` variable of the queries holds, as SQLAlchemy asyncpg URLs.

    Args:
        contract: The queries.
        environ: Where the variables are read; default: the process environment.

    Raises:
        ValueError: A variable is unset or empty, or holds no PostgreSQL URL. The message names the query and
            the variable, never the value (it may hold a password).
    """
    env = os.environ if environ is None else environ
    urls: dict[str, str] = {}
    for query in contract.queries:
        name = query.dsn_env
        if name is None or name in urls:
            continue
        value = env.get(name, "").strip()
        if not value:
            raise ValueError(f"query {query.name}: its database URL variable {name} is not set")
        urls[name] = _asyncpg_url(value, query.name, name)
    return urls


def _asyncpg_url(value: str, query: str, variable: str) -> str:
    """``value`` as a ``postgresql+asyncpg`` URL (``postgresql://`` and ``postgres://`` are accepted too)."""
    try:
        url = make_url(value)
    except (ArgumentError, ValueError):  # their messages quote the value
        raise ValueError(f"query {query}: {variable} holds no database URL") from None
    if url.drivername not in {"postgresql", "postgres", "postgresql+asyncpg"}:
        raise ValueError(f"query {query}: {variable} holds no PostgreSQL URL")
    return url.set(drivername="postgresql+asyncpg").render_as_string(hide_password=False)
