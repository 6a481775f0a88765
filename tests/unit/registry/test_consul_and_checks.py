"""Consul service definitions, durations and filters; HTTP check readings; wait durations; addresses."""

from __future__ import annotations

import datetime as dt

import msgspec
import pytest

from omninode_bridge.core.errors import ProblemError
from omninode_bridge.core.inputs import InputError
from omninode_bridge.modules.registry import schemas, server_json
from omninode_bridge.modules.registry.services import (
    AddressRefused,
    check_address,
    http_status,
    parse_wait,
    registered_hosts,
)
from omninode_bridge.modules.registry.services._consul import ConsulFilter, consul_duration, node_in_of


def test_consul_definition_any_casing_becomes_a_node() -> None:
    node = node_in_of({"name": "web", "ID": "web-1", "Tags": ["a"], "address": "10.0.0.1", "Port": 80,
                       "Meta": {"version": "1.2.3", "Zone": "eu"},
                       "checks": [{"TTL": "1m30s", "DeregisterCriticalServiceAfter": "90s"}]})  # fmt: skip
    assert (node.node_id, node.name, node.version, node.port) == ("web-1", "web", "1.2.3", 80)
    assert node.meta == {"version": "1.2.3", "Zone": "eu"}  # Meta keys keep their case
    assert node.check is not None
    assert (node.check.kind, node.check.ttl, node.check.deregister_critical_after) == ("ttl", 90.0, 90.0)
    assert node.check.status == "critical"  # Consul's initial check status


def test_consul_definition_errors_name_consul_fields() -> None:
    with pytest.raises(InputError) as missing:
        node_in_of({"ID": "x"})
    assert missing.value.field == "Name"
    with pytest.raises(InputError) as bad_port:
        node_in_of({"Name": "web", "Port": 70000})
    assert bad_port.value.field == "Port"
    with pytest.raises(InputError) as script:
        node_in_of({"Name": "web", "Check": {"Args": ["/bin/true"], "Interval": "10s"}})
    assert script.value.field == "Check"


@pytest.mark.parametrize(("raw", "seconds"), [("10s", 10.0), ("1m30s", 90.0), ("250ms", 0.25), (5_000_000_000, 5.0)])
def test_consul_durations(raw: object, seconds: float) -> None:
    assert consul_duration(raw, "TTL") == pytest.approx(seconds)


@pytest.mark.parametrize("raw", ["10", "s", "-1s", True, 0, "1y"])
def test_bad_consul_durations(raw: object) -> None:
    with pytest.raises(InputError):
        consul_duration(raw, "TTL")


def _out(**fields: object) -> schemas.NodeOut:
    now = dt.datetime.now(dt.UTC)
    base: dict[str, object] = {
        "node_id": "n", "name": "web", "node_type": "service", "version": "1.0.0", "address": None, "port": None,
        "url": None, "tags": ["blue"], "meta": {"zone": "eu"}, "capabilities": [], "tools": [], "check": None,
        "status": "passing", "output": "", "status_changed_at": now, "registered_at": now, "updated_at": now,
        "create_index": 1, "modify_index": 1,
    }  # fmt: skip
    return msgspec.convert({**base, **fields}, schemas.NodeOut)


def test_filter_subset() -> None:
    node = _out()
    assert ConsulFilter('Service.Meta.zone == "eu" and "blue" in Service.Tags').matches(node)
    assert not ConsulFilter('Service.Meta.zone != "eu"').matches(node)
    assert ConsulFilter('Service.Tags contains "blue" and Checks.Status == "passing"').matches(node)
    assert not ConsulFilter('Service.Service == "api"').matches(node)
    with pytest.raises(ProblemError):
        ConsulFilter("Service.Port > 3")


@pytest.mark.parametrize(("code", "status"), [(200, "passing"), (204, "passing"), (429, "warning"), (500, "critical"),
                                              (301, "critical"), (404, "critical")])  # fmt: skip
def test_http_check_reading(code: int, status: str) -> None:
    assert http_status(code) == status


def test_wait_durations() -> None:
    assert parse_wait("100ms", default=300, maximum=600) == pytest.approx(0.1)
    assert parse_wait("5m", default=300, maximum=60) == 60
    assert parse_wait(None, default=300, maximum=600) == 300
    with pytest.raises(InputError):
        parse_wait("soon", default=300, maximum=600)


async def test_private_addresses_refused_unless_allowed() -> None:
    for host in ["127.0.0.1", "10.1.2.3", "169.254.169.254", "::1", "0.0.0.0"]:
        with pytest.raises(AddressRefused):
            await check_address(host, allow_private=False)
        await check_address(host, allow_private=True)
    await check_address("93.184.216.34", allow_private=False)
    assert registered_hosts("API.example.com", "http://[::1]:80/x") == {"api.example.com", "::1"}


def test_node_validation() -> None:
    decode = msgspec.json.Decoder(schemas.NodeIn).decode
    ok = b'{"node_id":"a","name":"svc","node_type":"compute","version":"1.0.0-rc.1"}'
    assert decode(ok).version == "1.0.0-rc.1"
    for bad, field in [
        (b'{"node_id":"a","name":"svc","node_type":"robot","version":"1.0.0"}', "node_type"),
        (b'{"node_id":"a","name":"svc","node_type":"compute","version":"1.0"}', "version"),
        (b'{"node_id":"a","name":"s v c","node_type":"compute","version":"1.0.0"}', "name"),
        (
            b'{"node_id":"a","name":"s","node_type":"compute","version":"1.0.0","capabilities":[{"name":"x",'
            b'"version":"^1"}]}',
            "capabilities[0].version",
        ),
    ]:
        with pytest.raises(msgspec.ValidationError, match=field.replace("[", r"\[").replace("]", r"\]")):
            decode(bad)


def test_server_json_versions_must_be_exact() -> None:
    assert server_json.exact_version_problem("1.0.0") is None
    assert server_json.exact_version_problem("2025.01.15") is None
    for bad in ["latest", "^1.0.0", "~1.2", ">=1", "1.x", "1.0.*"]:
        assert server_json.exact_version_problem(bad) is not None
