"""Health, metrics, errors and the OpenAPI description."""

from __future__ import annotations

from litestar import Litestar, get
from litestar.testing import AsyncTestClient
from prometheus_client.parser import text_string_to_metric_families

from omninode_bridge.core.module import Module
from omninode_bridge.settings import Settings
from tests.integration.conftest import app_client

Client = AsyncTestClient[Litestar]


async def test_health_reports_every_component(client: Client) -> None:
    response = await client.get("/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "healthy"
    assert set(body["components"]) == {"database", "kafka", "redis", "metrics"}
    for name in ("database", "kafka", "redis"):
        assert body["components"][name]["status"] == "up"
        assert body["components"][name]["latency_ms"] >= 0
    # The shipped model catalog is empty: the metrics component says so, the service stays healthy.
    assert body["components"]["metrics"]["status"] == "degraded"
    assert body["version"]
    assert body["uptime_seconds"] >= 0
    assert (await client.get("/health/live")).json() == {"status": "alive"}
    ready = await client.get("/health/ready")
    assert ready.status_code == 200
    assert ready.json()["status"] == "ready"


async def test_metrics_is_valid_prometheus_text_with_request_histogram(
    client: Client, admin_headers: dict[str, str]
) -> None:
    await client.get("/admin/api-keys", headers=admin_headers)
    response = await client.get("/metrics")
    assert response.status_code == 200
    families = {f.name: f for f in text_string_to_metric_families(response.text)}
    histogram = families["omninode_request_duration_seconds"]
    assert histogram.type == "histogram"
    buckets = {
        float(s.labels["le"]) for s in histogram.samples if s.name.endswith("_bucket") and s.labels["le"] != "+Inf"
    }
    assert {0.005, 1.0} <= buckets
    assert any(s.labels.get("path") == "/admin/api-keys" for s in histogram.samples)
    assert "omninode_requests_in_progress" in families
    pool = families["omninode_db_pool_connections"]
    assert {s.labels["state"] for s in pool.samples} >= {"size", "checked_out"}
    assert "omninode_circuit_breaker_state" in families


async def test_unknown_route_and_method_are_problem_details(client: Client) -> None:
    missing = await client.get("/no/such/path")
    assert missing.status_code == 404
    assert missing.json()["type"] == "https://omninode.dev/problems/not-found"
    wrong = await client.put("/health/live")
    assert wrong.status_code == 405
    assert wrong.headers["content-type"].startswith("application/problem+json")


async def test_unexpected_error_is_500_without_traceback(settings: Settings) -> None:
    @get("/boom", sync_to_thread=False)
    def boom() -> None:
        raise RuntimeError("secret internal detail")

    async with app_client(settings, modules=[Module(name="boom", route_handlers=[boom])]) as client:
        response = await client.get(
            "/boom", headers={"X-API-Key": "onb_test_admin_key_0123456789abcdef", "X-Correlation-ID": "c-500"}
        )
    assert response.status_code == 500
    body = response.json()
    assert body["type"] == "https://omninode.dev/problems/internal-error"
    assert body["correlation_id"] == "c-500"
    assert "secret internal detail" not in response.text
    assert "Traceback" not in response.text


async def test_correlation_id_is_generated_and_echoed(client: Client) -> None:
    generated = await client.get("/health/live")
    assert len(generated.headers["x-correlation-id"]) == 36
    echoed = await client.get("/health/live", headers={"X-Correlation-ID": "abc-123"})
    assert echoed.headers["x-correlation-id"] == "abc-123"
    invalid = await client.get("/health/live", headers={"X-Correlation-ID": "bad id with spaces"})
    assert invalid.headers["x-correlation-id"] != "bad id with spaces"


async def test_openapi_documents_every_endpoint(client: Client) -> None:
    spec = (await client.get("/schema/openapi.json")).json()
    assert {"ApiKeyHeader", "BearerAuth"} <= set(spec["components"]["securitySchemes"])
    operations = [op for path in spec["paths"].values() for op in path.values()]
    assert len(operations) >= 7
    for operation in operations:
        assert operation.get("operationId"), operation
        assert operation.get("summary"), operation
    create = spec["paths"]["/admin/api-keys"]["post"]
    assert {"401", "403", "429"} <= set(create["responses"])
    assert create["security"] == [{"ApiKeyHeader": []}, {"BearerAuth": []}]
    assert "security" not in spec["paths"]["/health"]["get"]
    assert (await client.get("/schema")).status_code == 200
