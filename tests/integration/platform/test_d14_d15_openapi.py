"""Issue 11, defects 14 (the OpenAPI document disagreed with the responses) and 15 (unmatched routes
skipped the middleware)."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import jsonschema_rs
import pytest
from redis.asyncio import Redis

from omninode_bridge.core.inputs import anchored
from tests.integration.conftest import app_client, make_settings

if TYPE_CHECKING:
    from litestar import Litestar
    from litestar.testing import AsyncTestClient

    from omninode_bridge.embedded import EmbeddedStack

    Client = AsyncTestClient[Litestar]

PROBLEM = "application/problem+json"
PROBLEM_REF = "#/components/schemas/Problem"
IP_BUCKET = "ratelimit:ip:testclient"


@pytest.fixture(scope="module")
async def document(client: Client) -> dict[str, Any]:
    """The OpenAPI document as served."""
    response = await client.get("/schema/openapi.json")
    assert response.status_code == 200
    return response.json()


def _operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    methods = {"get", "post", "put", "patch", "delete"}
    return [
        (method.upper(), path, operation)
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if method in methods
    ]


def _is_problem(response: dict[str, Any]) -> bool:
    content = response.get("content") or {}
    return list(content) == [PROBLEM] and content[PROBLEM]["schema"] == {"$ref": PROBLEM_REF}


async def test_d14_every_operation_documents_400_422_500_as_problem_details(document: dict[str, Any]) -> None:
    operations = _operations(document)
    assert len(operations) >= 40
    for method, path, operation in operations:
        for status in ("400", "422", "429", "500", "503"):
            if status == "503" and path.startswith("/health"):
                continue  # health probes answer 503 with their own report (checked below)
            assert _is_problem(operation["responses"].get(status, {})), f"{method} {path} {status}"
        if operation.get("security"):
            for status in ("401", "403"):
                assert _is_problem(operation["responses"].get(status, {})), f"{method} {path} {status}"


async def test_d14_health_documents_its_503_report(document: dict[str, Any]) -> None:
    unhealthy = document["paths"]["/health"]["get"]["responses"]["503"]
    assert unhealthy["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Health"}
    assert "503" in document["paths"]["/health/ready"]["get"]["responses"]


async def test_d14_no_error_is_documented_in_litestars_own_json_shape(document: dict[str, Any]) -> None:
    for method, path, operation in _operations(document):
        for status, response in operation["responses"].items():
            if int(status) >= 400 and not (status == "503" and path.startswith("/health")):
                assert PROBLEM in (response.get("content") or {}), f"{method} {path} {status}"


async def test_d14_problem_schema_matches_what_errors_carry(client: Client, document: dict[str, Any]) -> None:
    schema = document["components"]["schemas"]["Problem"]
    assert set(schema["required"]) == {"type", "title", "status", "detail", "correlation_id"}
    response = await client.get("/admin/api-keys")  # no key: a 401 problem
    body = response.json()
    assert response.headers["content-type"].startswith(PROBLEM)
    assert set(schema["required"]) <= set(body)
    assert isinstance(body["correlation_id"], str)


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


async def test_d14_asyncapi_json_is_documented_as_an_object(client: Client, document: dict[str, Any]) -> None:
    schema = document["paths"]["/asyncapi.json"]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    assert schema["type"] == "object"
    assert isinstance((await client.get("/asyncapi.json")).json(), dict)


async def test_d14_batch_duplicate_is_documented_with_the_batch_schema(document: dict[str, Any]) -> None:
    responses = document["paths"]["/hooks/batch"]["post"]["responses"]
    for status in ("200", "202"):
        assert responses[status]["content"]["application/json"]["schema"] == {
            "$ref": "#/components/schemas/HookBatchAccepted"
        }


async def test_d14_stamp_file_hash_documents_its_pattern(
    client: Client, admin_headers: dict[str, str], document: dict[str, Any]
) -> None:
    (parameter,) = [p for p in document["paths"]["/stamp/{file_hash}"]["get"]["parameters"] if p["in"] == "path"]
    pattern = parameter["schema"]["pattern"]
    assert re.search(pattern, "ab" * 32)
    assert not re.search(pattern, "ab" * 32 + "\n")
    assert not re.search(pattern, "ab" * 31)
    response = await client.get("/stamp/not-a-hash", headers=admin_headers)
    assert response.status_code == 422
    assert response.headers["content-type"].startswith(PROBLEM)


async def test_d14_malformed_json_is_a_400_problem_as_documented(
    client: Client, admin_headers: dict[str, str], document: dict[str, Any]
) -> None:
    response = await client.post(
        "/admin/api-keys", content=b"{not json", headers={**admin_headers, "Content-Type": "application/json"}
    )
    assert response.status_code == 400
    assert response.headers["content-type"].startswith(PROBLEM)
    assert _is_problem(document["paths"]["/admin/api-keys"]["post"]["responses"]["400"])


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


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/no/such/path", 404),
        ("GET", "/admin/api-keys/not-a-uuid", 405),  # the path exists for DELETE only
        ("DELETE", "/admin/api-keys/not-a-uuid", 404),  # a non-UUID path parameter matches no route
        ("GET", "/hooks/events/not-a-uuid", 404),
        ("PUT", "/health/live", 405),
    ],
)
async def test_d15_unmatched_routes_carry_correlation_and_rate_limit_headers(
    client: Client, admin_headers: dict[str, str], method: str, path: str, status: int
) -> None:
    response = await client.request(method, path, headers={**admin_headers, "X-Correlation-ID": "d15-unmatched"})
    assert response.status_code == status
    assert response.headers["content-type"].startswith(PROBLEM)
    assert response.json()["correlation_id"] == "d15-unmatched"
    assert response.headers["x-correlation-id"] == "d15-unmatched"
    for header in ("ratelimit-limit", "ratelimit-remaining", "ratelimit-reset"):
        assert header in response.headers, header


async def test_d15_unmatched_routes_generate_a_correlation_id(client: Client) -> None:
    response = await client.get("/nothing/here")
    assert response.status_code == 404
    assert response.json()["correlation_id"] == response.headers["x-correlation-id"]
    assert len(response.headers["x-correlation-id"]) == 36


async def test_d15_unmatched_routes_are_rate_limited(stack: EmbeddedStack) -> None:
    limited = make_settings(stack, security={"rate_limit_requests": 2, "rate_limit_window_seconds": 60})
    redis = Redis.from_url(stack.urls["redis_url"])
    # The test client's address has its own bucket, which other tests of the session filled too.
    await redis.delete(IP_BUCKET)
    try:
        async with app_client(limited) as client:
            headers = {"X-Correlation-ID": "d15-limited"}
            answers = [await client.get("/no/such/path", headers=headers) for _ in range(3)]
    finally:
        await redis.delete(IP_BUCKET)
        await redis.aclose()
    assert [a.status_code for a in answers] == [404, 404, 429]
    refused = answers[2]
    assert refused.headers["content-type"].startswith(PROBLEM)
    assert refused.json()["correlation_id"] == "d15-limited"
    assert refused.headers["x-correlation-id"] == "d15-limited"
    assert int(refused.headers["retry-after"]) >= 1
    assert refused.headers["ratelimit-remaining"] == "0"
