"""The named SQL queries ``sql`` tasks may run (``contracts/workflow/queries.yaml``), declared by an operator.

A request names a query and gives its bind parameters; SQL text never comes from a request.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated

import msgspec
import yaml

from omninode_bridge.core.contracts import contracts_dir, load_yaml

__all__ = ["NamedQuery", "QueriesContract", "load_queries"]

_BIND = re.compile(r"(?<![:\w]):([A-Za-z_][A-Za-z0-9_]*)")


class NamedQuery(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, frozen=True):
    """One query: SQL with ``:name`` bind parameters, read-only unless declared otherwise."""

    name: Annotated[str, msgspec.Meta(pattern=r"^[a-z][a-z0-9_]{0,63}$")]
    sql: str
    description: str = ""
    read_only: bool = True
    row_limit: Annotated[int, msgspec.Meta(ge=1, le=100_000)] = 1000
    statement_timeout_ms: Annotated[int, msgspec.Meta(ge=1, le=3_600_000)] = 5000

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
        ValueError: The file does not parse, or two queries share a name.
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
    return contract
