"""Quality scoring: the contract's checks for a task type, run on an answer and combined into 0..1."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

import msgspec

from omninode_bridge.modules.metrics.contract import CheckSpec

__all__ = ["CheckResult", "Score", "matches_schema", "score"]


@dataclass(frozen=True, slots=True)
class CheckResult:
    """One check: passed or not, and why not."""

    name: str
    passed: bool
    detail: str | None = None
    #: A graded check's score (the judge's); pass/fail checks count as 1 or 0.
    score: float | None = None


@dataclass(frozen=True, slots=True)
class Score:
    """The weighted share of checks passed (1.0 when no check applies) and the per-check results."""

    value: float
    checks: list[CheckResult]


@cache
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def _wants_json(response_format: Mapping[str, Any] | None) -> bool:
    return response_format is not None and response_format.get("type") in ("json_object", "json_schema")


def _schema_of(response_format: Mapping[str, Any] | None) -> Any:
    if response_format is None or response_format.get("type") != "json_schema":
        return None
    spec = response_format.get("json_schema")
    return spec.get("schema") if isinstance(spec, dict) else None


def _run(check: CheckSpec, text: str, response_format: Mapping[str, Any] | None) -> CheckResult | None:
    kind, name = check.kind, check.name
    if kind == "judge":
        return None  # graded by a model call (services.judge), handed to score() as ``judged``
    if kind == "non_empty":
        return CheckResult(name, bool(text.strip()), None if text.strip() else "the answer is empty")
    if kind == "min_length" and check.value is not None:
        ok = len(text) >= check.value
        return CheckResult(name, ok, None if ok else f"{len(text)} characters, fewer than {check.value}")
    if kind == "max_length" and check.value is not None:
        ok = len(text) <= check.value
        return CheckResult(name, ok, None if ok else f"{len(text)} characters, more than {check.value}")
    if kind == "json":
        if not _wants_json(response_format):
            return None  # applies only when the request asked for JSON
        try:
            document = msgspec.json.decode(text.strip())
        except msgspec.DecodeError:
            return CheckResult(name, False, "the answer is not valid JSON")
        schema = _schema_of(response_format)
        problem = matches_schema(document, schema) if schema is not None else None
        return CheckResult(name, problem is None, problem)
    if check.pattern is not None:
        found = _compiled(check.pattern).search(text) is not None
        if kind == "required_regex":
            return CheckResult(name, found, None if found else "the required pattern is missing")
        return CheckResult(name, not found, "a forbidden pattern appears" if found else None)
    return None


def score(
    checks: Sequence[CheckSpec],
    text: str,
    response_format: Mapping[str, Any] | None = None,
    judged: Mapping[int, CheckResult] | None = None,
) -> Score:
    """Run the checks that apply; the score is the weighted mean of their scores (a passed check 1, a failed
    one 0, a judge its grade). ``judged`` holds the judge checks' results by index in ``checks``; a judge that
    could not grade (its call failed, its reply had no score) is reported with weight 0, not as a failure."""
    results: list[tuple[CheckResult, float]] = []
    for index, check in enumerate(checks):
        result = (
            judged.get(index) if judged is not None and check.kind == "judge" else _run(check, text, response_format)
        )
        if result is not None:
            results.append((result, check.weight if result.score is not None or check.kind != "judge" else 0.0))
    total = sum(weight for _, weight in results)
    earned = sum(weight * (r.score if r.score is not None else float(r.passed)) for r, weight in results)
    value = earned / total if total else 1.0
    return Score(round(value, 4), [result for result, _ in results])


_TYPES: Mapping[str, tuple[type, ...]] = {
    "object": (dict,),
    "array": (list,),
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "null": (type(None),),
}


def matches_schema(value: Any, schema: Any, path: str = "$") -> str | None:
    """Check ``value`` against the JSON Schema keywords structured outputs use (``type``, ``enum``, ``const``,
    ``required``, ``properties``, ``additionalProperties: false``, ``items``, ``minItems``/``maxItems``,
    ``minLength``/``maxLength``, ``minimum``/``maximum``); other keywords are not checked.

    Returns:
        None when it matches, else where and why not.
    """
    if not isinstance(schema, dict):
        return None
    expected = schema.get("type")
    if expected is not None:
        names = expected if isinstance(expected, list) else [expected]
        allowed = tuple(t for n in names for t in _TYPES.get(str(n), ()))
        is_bool = isinstance(value, bool)
        if allowed and (not isinstance(value, allowed) or (is_bool and bool not in allowed)):
            return f"{path}: expected {expected}"
    if "enum" in schema and value not in schema["enum"]:
        return f"{path}: not one of the allowed values"
    if "const" in schema and value != schema["const"]:
        return f"{path}: not the required value"
    if isinstance(value, dict):
        for key in schema.get("required") or ():
            if key not in value:
                return f"{path}: {key!r} is required"
        properties = schema.get("properties") or {}
        for key, item in value.items():
            if key in properties:
                problem = matches_schema(item, properties[key], f"{path}.{key}")
                if problem:
                    return problem
            elif schema.get("additionalProperties") is False:
                return f"{path}: {key!r} is not allowed"
    if isinstance(value, list):
        if len(value) < schema.get("minItems", 0) or len(value) > schema.get("maxItems", len(value)):
            return f"{path}: {len(value)} items is out of bounds"
        for index, item in enumerate(value):
            problem = matches_schema(item, schema.get("items"), f"{path}[{index}]")
            if problem:
                return problem
    if isinstance(value, str) and not schema.get("minLength", 0) <= len(value) <= schema.get("maxLength", len(value)):
        return f"{path}: length out of bounds"
    if isinstance(value, int | float) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            return f"{path}: below the minimum"
        if "maximum" in schema and value > schema["maximum"]:
            return f"{path}: above the maximum"
    return None
