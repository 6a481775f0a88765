"""The MCP server registry (official v0 API shape): publish, list, versions, latest, validation."""

from __future__ import annotations

import uuid
from typing import Any

from litestar import Litestar
from litestar.testing import AsyncTestClient

H = {"X-API-Key": "onb_test_admin_key_0123456789abcdef"}


def _server(name: str, version: str, **fields: Any) -> dict[str, Any]:
    return {
        "$schema": "https://static.modelcontextprotocol.io/schemas/2025-12-11/server.schema.json",
        "name": name, "description": "Weather forecasts for MCP clients", "version": version,
        "packages": [{"registryType": "npm", "identifier": "@example/weather", "version": version,
                      "transport": {"type": "stdio"}}],
        "remotes": [{"type": "streamable-http", "url": "https://weather.example.com/mcp"}],
        **fields,
    }  # fmt: skip


async def test_publish_list_and_read_versions(registry_client: AsyncTestClient[Litestar]) -> None:
    client = registry_client
    name = f"io.github.example{uuid.uuid4().hex[:6]}/weather"
    for version in ["1.0.0", "1.2.0", "1.1.0"]:
        published = await client.post("/v0/publish", json=_server(name, version), headers=H)
        assert published.status_code == 200, published.text
    meta = published.json()["_meta"]["io.modelcontextprotocol.registry/official"]
    assert meta["isLatest"] is False  # 1.1.0 after 1.2.0
    again = await client.post("/v0/publish", json=_server(name, "1.0.0"), headers=H)
    assert again.status_code == 409
    namespace, server = name.split("/")
    versions = (await client.get(f"/v0/servers/{namespace}/{server}/versions", headers=H)).json()
    assert [v["server"]["version"] for v in versions] == ["1.0.0", "1.2.0", "1.1.0"]
    latest = await client.get(f"/v0/servers/{namespace}%2F{server}/versions/latest", headers=H)
    assert latest.status_code == 200
    assert latest.json()["server"]["version"] == "1.2.0"
    listed = (await client.get("/v0/servers", params={"search": namespace, "version": "latest"}, headers=H)).json()
    assert [s["server"]["name"] for s in listed["servers"]] == [name]
    assert listed["servers"][0]["server"]["remotes"][0]["url"] == "https://weather.example.com/mcp"
    page = (await client.get("/v0/servers", params={"search": namespace, "limit": 2}, headers=H)).json()
    assert page["metadata"]["count"] == 2
    assert page["metadata"]["nextCursor"]
    missing = await client.get(f"/v0/servers/{namespace}/{server}/versions/9.9.9", headers=H)
    assert missing.status_code == 404


async def test_invalid_server_json_names_the_field(registry_client: AsyncTestClient[Litestar]) -> None:
    cases = [
        (_server("io.github.a/b/c", "1.0.0"), "name"),
        (_server("io.github.a/b", "latest"), "version"),
        (_server("io.github.a/b", "^1.0.0"), "version"),
        ({**_server("io.github.a/b", "1.0.0"), "description": "x" * 101}, "description"),
        ({**_server("io.github.a/b", "1.0.0"), "remotes": [{"type": "streamable-http"}]}, "remotes[0].url"),
    ]
    for body, field in cases:
        response = await registry_client.post("/v0/publish", json=body, headers=H)
        assert response.status_code == 422, (field, response.text)
        assert field in response.json()["detail"] + str(response.json().get("errors")), (field, response.json())
