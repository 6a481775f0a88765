"""The Consul-compatible subset driven by a maintained Consul client from PyPI (py-consul), as a user would."""

from __future__ import annotations

import asyncio
import urllib.parse
import uuid

import consul
import pytest

from omninode_bridge.embedded import EmbeddedStack
from tests.integration.conftest import ADMIN_KEY, live_server, make_settings


async def test_consul_client_registers_passes_discovers_and_deregisters(stack: EmbeddedStack) -> None:
    settings = make_settings(stack, registry={"allow_private_addresses": True})
    async with live_server(settings) as base:
        url = urllib.parse.urlsplit(base)
        client = consul.Consul(host=url.hostname, port=url.port, token=ADMIN_KEY)
        name = f"payments-{uuid.uuid4().hex[:6]}"
        service_id = f"{name}-1"

        def scenario() -> None:
            assert client.agent.service.register(
                name, service_id=service_id, address="127.0.0.1", port=9000, tags=["v1", "blue"],
                meta={"version": "1.4.0"}, check=consul.Check.ttl("10s"),
            )  # fmt: skip
            _, critical = client.health.service(name, passing=True)
            assert critical == []  # a Consul TTL check starts critical
            assert client.agent.check.ttl_pass(f"service:{service_id}", notes="all good")
            index, entries = client.health.service(name, passing=True)
            assert [e["Service"]["ID"] for e in entries] == [service_id]
            assert entries[0]["Checks"][0]["Status"] == "passing"
            assert entries[0]["Checks"][0]["Output"] == "all good"
            assert entries[0]["Service"]["Meta"] == {"version": "1.4.0"}
            _, tagged = client.health.service(name, tag="blue", passing=True)
            assert len(tagged) == 1
            _, services = client.catalog.services()
            assert services[name] == ["blue", "v1"]
            assert client.agent.services()[service_id]["Port"] == 9000
            assert client.agent.service.deregister(service_id)
            later_index, gone = client.health.service(name, index=index, wait="2s")
            assert gone == []
            assert int(later_index) > int(index)

        await asyncio.to_thread(scenario)


async def test_consul_filter_subset_and_unsupported_expressions(stack: EmbeddedStack) -> None:
    settings = make_settings(stack, registry={"allow_private_addresses": True})
    async with live_server(settings) as base:
        url = urllib.parse.urlsplit(base)
        client = consul.Consul(host=url.hostname, port=url.port, token=ADMIN_KEY)
        name = f"search-{uuid.uuid4().hex[:6]}"

        def scenario() -> None:
            for n, zone in enumerate(["eu", "us"]):
                client.agent.service.register(name, service_id=f"{name}-{n}", meta={"zone": zone})
            _, eu = client.health.service(name, filter_expr='Service.Meta.zone == "eu"')
            assert [e["Service"]["ID"] for e in eu] == [f"{name}-0"]
            with pytest.raises(consul.ConsulException):
                client.health.service(name, filter_expr="Service.Port > 3")

        await asyncio.to_thread(scenario)
