"""The OpenAPI document the app builds (issue 11, defect 14): every error a Problem, specific statuses, patterns."""

from __future__ import annotations

import re
from typing import Any

import jsonschema_rs
import pytest

from omninode_bridge.core.inputs import anchored
from tests.support.openapi_cases import DOCUMENT, PROBLEM, is_problem


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    """The OpenAPI document the app builds (the one it serves; schemathesis checks they are the same)."""
    return DOCUMENT


def _operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    methods = {"get", "post", "put", "patch", "delete"}
    return [
        (method.upper(), path, operation)
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if method in methods
    ]


async def test_d14_every_operation_documents_400_422_500_as_problem_details(document: dict[str, Any]) -> None:
    operations = _operations(document)
    assert len(operations) >= 40
    for method, path, operation in operations:
        for status in ("400", "422", "429", "500", "503"):
            if status == "503" and path.startswith("/health"):
                continue  # health probes answer 503 with their own report (checked below)
            assert is_problem(operation["responses"].get(status, {})), f"{method} {path} {status}"
        if operation.get("security"):
            for status in ("401", "403"):
                assert is_problem(operation["responses"].get(status, {})), f"{method} {path} {status}"


async def test_d14_health_documents_its_503_report(document: dict[str, Any]) -> None:
    unhealthy = document["paths"]["/health"]["get"]["responses"]["503"]
    assert unhealthy["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Health"}
    assert "503" in document["paths"]["/health/ready"]["get"]["responses"]


async def test_d14_no_error_is_documented_in_litestars_own_json_shape(document: dict[str, Any]) -> None:
    for method, path, operation in _operations(document):
        for status, response in operation["responses"].items():
            if status == "default":  # the proxy's "whatever the upstream answered": not one of our errors
                continue
            if int(status) >= 400 and not (status == "503" and path.startswith("/health")):
                assert PROBLEM in (response.get("content") or {}), f"{method} {path} {status}"


async def test_d14_operation_specific_statuses_are_documented(document: dict[str, Any]) -> None:
    paths = document["paths"]
    expected = {
        ("post", "/stamp"): {"200", "201", "413"},
        ("get", "/stamp/{file_hash}"): {"404"},
        ("post", "/validate"): {"404"},
        ("delete", "/admin/api-keys/{key_id}"): {"404"},
        ("post", "/hooks/sources"): {"409"},
        ("get", "/hooks/sources/{name}"): {"404"},
        ("get", "/hooks/events/{event_id}"): {"404"},
        ("get", "/hooks/sessions/{session_id}"): {"404"},
        ("get", "/orchestrator/workflows/{workflow_id}"): {"404"},
        ("get", "/namespaces/{namespace}/stats"): {"404"},
        ("post", "/events/dlq/{dead_letter_id}/redrive"): {"404", "409"},
        **{("post", f"/codegen/{kind}"): {"504"} for kind in ("analyze", "validate", "pattern", "mixin")},
    }
    for (method, path), statuses in expected.items():
        documented = set(paths[path][method]["responses"])
        assert statuses <= documented, f"{method.upper()} {path}: {statuses - documented} missing"


async def test_d14_post_stamp_documents_200_and_201_with_the_stamp_schema(document: dict[str, Any]) -> None:
    responses = document["paths"]["/stamp"]["post"]["responses"]
    for status in ("200", "201"):
        assert responses[status]["content"]["application/json"]["schema"] == {
            "$ref": "#/components/schemas/StampResponse"
        }


async def test_d14_batch_duplicate_is_documented_with_the_batch_schema(document: dict[str, Any]) -> None:
    responses = document["paths"]["/hooks/batch"]["post"]["responses"]
    for status in ("200", "202"):
        assert responses[status]["content"]["application/json"]["schema"] == {
            "$ref": "#/components/schemas/HookBatchAccepted"
        }


def _patterns(node: Any) -> list[str]:
    if isinstance(node, dict):
        own = [node["pattern"]] if isinstance(node.get("pattern"), str) else []
        return own + [p for value in node.values() for p in _patterns(value)]
    if isinstance(node, list):
        return [p for value in node for p in _patterns(value)]
    return []


async def test_d14_every_pattern_is_a_json_schema_regex(document: dict[str, Any]) -> None:
    patterns = _patterns(document)
    assert patterns
    for pattern in patterns:
        # jsonschema_rs compiles ECMA-262 regexes, the dialect of JSON Schema (``\A``/``\Z`` are not in it).
        jsonschema_rs.validator_for({"type": "string", "pattern": pattern})


def test_d14_anchored_patterns_mean_the_same_in_json_schema_and_msgspec() -> None:
    pattern = anchored("[a-z]+")
    schema = jsonschema_rs.validator_for({"type": "string", "pattern": pattern})
    for value, valid in (("hooks", True), ("hooks\n", False), ("\nhooks", False), ("Hooks", False)):
        assert schema.is_valid(value) is valid, value
        assert (re.search(pattern, value) is not None) is valid, value
