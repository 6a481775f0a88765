"""Quality checks of the model catalog's task types."""

from __future__ import annotations

from pathlib import Path

import pytest

from omninode_bridge.core.contracts import ContractError
from omninode_bridge.modules.metrics.contract import CheckSpec, load_models
from omninode_bridge.modules.metrics.services.judge import parse_grade
from omninode_bridge.modules.metrics.services.quality import CheckResult, matches_schema, score

SCHEMA = {
    "type": "json_schema",
    "json_schema": {
        "name": "label",
        "schema": {
            "type": "object",
            "required": ["label"],
            "properties": {"label": {"type": "string", "enum": ["spam", "ham"]}},
            "additionalProperties": False,
        },
    },
}
CHECKS = [CheckSpec(kind="non_empty", weight=2), CheckSpec(kind="json"), CheckSpec(kind="max_length", value=50)]


def test_json_schema_match_and_mismatch() -> None:
    assert score(CHECKS, '{"label": "spam"}', SCHEMA).value == 1.0
    bad = score(CHECKS, '{"label": "eggs"}', SCHEMA)
    assert bad.value == 0.75
    assert [c.passed for c in bad.checks] == [True, False, True]
    assert score(CHECKS, "not json", SCHEMA).checks[1].detail == "the answer is not valid JSON"


def test_json_check_applies_only_when_json_is_asked_for() -> None:
    result = score(CHECKS, "plain text", None)
    assert [c.name for c in result.checks] == ["non_empty", "max_length:50"]
    assert result.value == 1.0
    assert score(CHECKS, "", None).value == pytest.approx(1 / 3, abs=1e-4)


def test_regex_checks() -> None:
    checks = [CheckSpec(kind="required_regex", pattern=r"def \w+"), CheckSpec(kind="forbidden_regex", pattern="TODO")]
    assert score(checks, "def f(): pass", None).value == 1.0
    assert score(checks, "TODO", None).value == 0.0


def test_schema_keywords() -> None:
    schema = {"type": "array", "items": {"type": "integer", "minimum": 0}, "maxItems": 2}
    assert matches_schema([1, 2], schema) is None
    assert matches_schema([1, -1], schema) == "$[1]: below the minimum"
    assert matches_schema([1, 2, 3], schema) == "$: 3 items is out of bounds"
    assert matches_schema(True, {"type": "integer"}) == "$: expected integer"


def test_repository_catalog_is_valid_and_empty() -> None:
    catalog = load_models(None)
    assert catalog.models == []
    assert "code_generation" in catalog.task_types


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("{id: a, base_url: 'ftp://x', model: m, task_types: [chat]}", "base_url must be an http"),
        ("{id: a, base_url: 'http://x', model: m, task_types: [nope]}", "task type 'nope' is not declared"),
        ("{id: a, base_url: 'http://x', model: m, task_types: [chat], api_key_env: UNSET_KEY_X}", "UNSET_KEY_X"),
        ("{id: A!, base_url: 'http://x', model: m, task_types: [chat]}", "id"),
    ],
)
def test_bad_catalog_entries_stop_start_up(tmp_path: Path, entry: str, message: str) -> None:
    path = tmp_path / "models.yaml"
    path.write_text(f"task_types: {{chat: {{}}}}\nmodels:\n  - {entry}\n")
    with pytest.raises(ContractError, match=message):
        load_models(str(path), environ={})


@pytest.mark.parametrize(
    ("reply", "grade"),
    [("0.8", 0.8), ("Grade: 1", 1.0), ("8/10", 0.8), ("0.25, because it misses the point", 0.25),
     ("7", None), ("excellent", None), ("", None), ("3/0", None)],
)  # fmt: skip
def test_judge_grades_are_read_from_the_reply(reply: str, grade: float | None) -> None:
    assert parse_grade(reply) == grade


def test_a_judge_grade_is_weighted_and_a_failed_judge_does_not_count() -> None:
    checks = [CheckSpec(kind="non_empty"), CheckSpec(kind="judge", model="j", weight=3)]
    graded = score(checks, "an answer", judged={1: CheckResult("judge:j", False, "graded 0.2", score=0.2)})
    assert graded.value == pytest.approx((1 + 3 * 0.2) / 4)
    assert [c.name for c in graded.checks] == ["non_empty", "judge:j"]
    failed = score(checks, "an answer", judged={1: CheckResult("judge:j", False, "the judge failed")})
    assert failed.value == 1.0
    assert score(checks, "an answer").value == 1.0  # no judge result: the check does not apply


def test_a_judge_must_be_a_catalog_model(tmp_path: Path) -> None:
    path = tmp_path / "models.yaml"
    path.write_text(
        "task_types: {chat: {checks: [{kind: judge, model: nobody}]}}\n"
        "models:\n  - {id: a, base_url: 'http://x', model: m, task_types: [chat]}\n"
    )
    with pytest.raises(ContractError, match="judge needs the id of a catalog model"):
        load_models(str(path), environ={})
