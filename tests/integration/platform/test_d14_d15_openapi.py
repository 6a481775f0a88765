"""Issue 11, defects 14 (the OpenAPI document disagreed with the responses) and 15 (unmatched routes
skipped the middleware)."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import pytest
from redis.asyncio import Redis

from tests.integration.conftest import app_client, make_settings
from tests.support.openapi_cases import PROBLEM, is_problem

if TYPE_CHECKING:
    from litestar import Litestar
    from litestar.testing import AsyncTestClient

    from omninode_bridge.embedded import EmbeddedStack

    Client = AsyncTestClient[Litestar]

IP_BUCKET = "ratelimit:ip:testclient"


@pytest.fixture(scope="module")
async def document(client: Client) -> dict[str, Any]:
    """The OpenAPI document as served."""
    response = await client.get("/schema/openapi.json")
    assert response.status_code == 200
    return response.json()


async def test_d14_problem_schema_matches_what_errors_carry(client: Client, document: dict[str, Any]) -> None:
    schema = document["components"]["schemas"]["Problem"]
    assert set(schema["required"]) == {"type", "title", "status", "detail", "correlation_id"}
    response = await client.get("/admin/api-keys")  # no key: a 401 problem
    body = response.json()
    assert response.headers["content-type"].startswith(PROBLEM)
    assert set(schema["required"]) <= set(body)
    assert isinstance(body["correlation_id"], str)


async def test_d14_asyncapi_json_is_documented_as_an_object(client: Client, document: dict[str, Any]) -> None:
    schema = document["paths"]["/asyncapi.json"]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    assert schema["type"] == "object"
    assert isinstance((await client.get("/asyncapi.json")).json(), dict)


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
    assert is_problem(document["paths"]["/admin/api-keys"]["post"]["responses"]["400"])


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
