"""The named queries' ``dsn_env``: the variable's name is checked by the contract, its value at load time."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from omninode_bridge.modules.workflow.contract import NamedQuery, QueriesContract, load_queries, query_database_urls

SECRET = "pw-s3cret"


def _contract(*variables: str) -> QueriesContract:
    return QueriesContract(
        queries=[NamedQuery(name=f"q{i}", sql="SELECT 1", dsn_env=v) for i, v in enumerate(variables)]
    )


@pytest.mark.parametrize("name", ["lower", "1ABC", "A-B", "ABC\n", "", "A" * 129])
def test_a_variable_name_outside_the_pattern_is_refused(name: str) -> None:
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert({"name": "q", "sql": "SELECT 1", "dsn_env": name}, NamedQuery)


def test_urls_are_read_from_the_environment_and_made_asyncpg_urls() -> None:
    environ = {"A_DSN": f"postgres://u:{SECRET}@h:5432/one", "B_DSN": f"postgresql+asyncpg://u:{SECRET}@h/two"}
    urls = query_database_urls(_contract("A_DSN", "B_DSN", "A_DSN"), environ)
    assert urls == {"A_DSN": f"postgresql+asyncpg://u:{SECRET}@h:5432/one", "B_DSN": environ["B_DSN"]}
    assert query_database_urls(QueriesContract(queries=[NamedQuery(name="q", sql="SELECT 1")]), {}) == {}


@pytest.mark.parametrize(
    "environ", [{}, {"A_DSN": " "}, {"A_DSN": f"nonsense {SECRET}"}, {"A_DSN": f"mysql://u:{SECRET}@h/d"}]
)
def test_an_unset_or_wrong_variable_is_named_and_its_value_never_shown(environ: dict[str, str]) -> None:
    with pytest.raises(ValueError, match=r"query q0: .*A_DSN") as raised:
        query_database_urls(_contract("A_DSN"), environ)
    assert SECRET not in str(raised.value)


def test_loading_the_file_fails_on_an_unset_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OMNINODE_TEST_UNSET_DSN", raising=False)
    file = tmp_path / "queries.yaml"
    file.write_text("queries:\n  - {name: elsewhere, sql: SELECT 1, dsn_env: OMNINODE_TEST_UNSET_DSN}\n")
    with pytest.raises(ValueError, match=r"elsewhere: .*OMNINODE_TEST_UNSET_DSN is not set"):
        load_queries(str(file))
    monkeypatch.setenv("OMNINODE_TEST_UNSET_DSN", "postgresql://u@h/d")
    assert load_queries(str(file)).queries[0].dsn_env == "OMNINODE_TEST_UNSET_DSN"
