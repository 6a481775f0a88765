"""How ``UnitOfWork.commit_one`` compiles a statement for the driver, without a database."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import Column, MetaData, String, Table, bindparam, insert, literal, select, text
from sqlalchemy.ext.asyncio import create_async_engine

from omninode_bridge.core import db as db_module
from omninode_bridge.core.db import Rows

_ENGINE = create_async_engine("postgresql+asyncpg://user:pw@127.0.0.1:1/none")  # never connects
_TABLE = Table("fast_path_rows", MetaData(), Column("id", String), Column("status", String, default="accepted"))


def _arguments(compiled: db_module._Compiled, params: dict[str, object]) -> list[object]:
    _, names, processors, inline = compiled
    values = []
    for name, process, default in zip(names, processors, inline, strict=True):
        value = params[name] if default is db_module._REQUIRED or name in params else default
        values.append(value if process is None else process(value))
    return values


def test_a_text_statement_becomes_numbered_parameters_reusing_a_repeated_name() -> None:
    statement = text("SELECT CAST(:a AS int), :b, CAST(:a AS int) + 1")
    compiled = db_module._positional(statement, _ENGINE)
    assert compiled is not None
    sql, names, _, _ = compiled
    assert sql == "SELECT CAST($1 AS int), $2, CAST($1 AS int) + 1"
    assert names == ("a", "b")
    assert db_module._positional(statement, _ENGINE) is compiled  # compiled once per statement


def test_core_statements_keep_their_literals_and_constant_column_defaults() -> None:
    statement = insert(_TABLE).values(id=bindparam("id")).returning(_TABLE.c.id, literal(7))
    compiled = db_module._positional(statement, _ENGINE)
    assert compiled is not None
    arguments = dict(zip(compiled[1], _arguments(compiled, {"id": "x"}), strict=True))
    assert arguments["id"] == "x"
    assert arguments["status"] == "accepted"  # SQLAlchemy's Python-side default, taken as SQLAlchemy would
    assert 7 in arguments.values()


def test_expanding_parameters_are_left_to_sqlalchemy() -> None:
    statement = select(_TABLE.c.id).where(_TABLE.c.id.in_(bindparam("ids", expanding=True)))
    assert db_module._positional(statement, _ENGINE) is None


def test_rows_answer_like_a_result() -> None:
    marker = uuid.uuid4()
    assert Rows([(marker, 2)]).scalar_one() == marker
    assert Rows([(1,), (2,)]).all() == [(1,), (2,)]
    for rows in (Rows([]), Rows([(1,), (2,)])):
        with pytest.raises(ValueError, match="expected one row"):
            rows.one()
