"""Replayed discovery answers against the real stack: byte for byte the handler's, and gone with the first change
(a registration, a check's new output), in the registry's API and the Consul subset."""

from __future__ import annotations

import re
import uuid

from litestar import Litestar
from litestar.testing import AsyncTestClient

from tests.integration.registry.test_nodes import H, _node

#: What a replay must send as the handler did (the per-request headers come from the middleware outside).
KEPT = ("content-type", "content-length", "x-consul-index")


async def _counts(client: AsyncTestClient[Litestar]) -> dict[str, float]:
    text = (await client.get("/metrics")).text
    found = re.findall(r'omninode_registry_read_answers_total\{outcome="(\w+)"\} ([0-9.e+]+)', text)
    return {outcome: float(value) for outcome, value in found}


async def test_a_repeated_lookup_is_replayed_until_the_catalog_changes(
    registry_client: AsyncTestClient[Litestar],
) -> None:
    client = registry_client
    name = f"replay-{uuid.uuid4().hex[:8]}"
    check = {"kind": "ttl", "ttl": 60, "status": "passing"}
    assert (await client.post("/registry/nodes", json=_node(f"{name}-a", name=name, check=check), headers=H)).is_success
    for path, params in [("/registry/nodes", {"name": name, "status": "passing"}), (f"/v1/health/service/{name}", {})]:
        before = await _counts(client)
        first = await client.get(path, params=params, headers=H)
        for _ in range(3):  # three, not one: a change elsewhere in the catalog (the checker) may come between
            again = await client.get(path, params=params, headers=H)
            assert (again.status_code, again.content) == (200, first.content)
            assert [again.headers.get(h) for h in KEPT] == [first.headers.get(h) for h in KEPT]
        after = await _counts(client)
        assert after.get("replayed", 0) - before.get("replayed", 0) >= 1
    # A registration: the very next lookup shows it (this process announced it before answering the POST).
    assert (await client.post("/registry/nodes", json=_node(f"{name}-b", name=name), headers=H)).is_success
    page = await client.get("/registry/nodes", params={"name": name, "status": "passing"}, headers=H)
    assert [n["node_id"] for n in page.json()["items"]] == [f"{name}-a", f"{name}-b"]
    assert int(page.headers["x-consul-index"]) > int(first.headers["x-consul-index"])
    # A new output with the same status moves no index, but the answers show it at once.
    beat = {"status": "passing", "output": "all good"}
    assert (await client.put(f"/registry/nodes/{name}-a/heartbeat", json=beat, headers=H)).is_success
    health = (await client.get(f"/v1/health/service/{name}", headers=H)).json()
    assert {e["Service"]["ID"]: e["Checks"][0]["Output"] for e in health if e["Checks"]} == {f"{name}-a": "all good"}
    page = await client.get("/registry/nodes", params={"name": name, "status": "passing"}, headers=H)
    assert page.json()["items"][0]["output"] == "all good"
    # A renamed node leaves the answers about its old service at once, and another service's change keeps them.
    assert (await client.post("/registry/nodes", json=_node(f"{name}-b", name=f"{name}-moved"), headers=H)).is_success
    page = await client.get("/registry/nodes", params={"name": name, "status": "passing"}, headers=H)
    assert [n["node_id"] for n in page.json()["items"]] == [f"{name}-a"]
    before = await _counts(client)
    assert (await client.post("/registry/nodes", json=_node(f"{name}-c", name=f"{name}-other"), headers=H)).is_success
    again = await client.get("/registry/nodes", params={"name": name, "status": "passing"}, headers=H)
    assert again.content == page.content
    assert (await _counts(client)).get("replayed", 0) - before.get("replayed", 0) >= 1
