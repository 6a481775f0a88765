"""Translation between Consul's agent/catalog/health JSON and the catalog: a Consul service is a node of type
``service`` whose id is the Consul service ID; its one check is ``service:<ID>``.

Supported ``filter`` expressions (``and``-joined): ``Service.Meta.<key> == "<value>"``, ``Service.Meta.<key> !=
"<value>"``, ``"<tag>" in Service.Tags``, ``Service.Tags contains "<tag>"``, ``Service.Service == "<name>"``,
``Checks.Status == "<status>"`` (the aggregated status). Anything else is a 400, as in Consul.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec

from omninode_bridge.core.errors import ProblemError
from omninode_bridge.core.inputs import InputError
from omninode_bridge.modules.registry import schemas
from omninode_bridge.modules.registry.semver import RangeError, parse_version

__all__ = ["ConsulFilter", "check_id_of", "consul_duration", "health_entry", "node_in_of", "service_of"]

_DURATION = re.compile(r"((?:[0-9]+(?:\.[0-9]+)?(?:ns|us|µs|ms|s|m|h))+)")
_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ns|us|µs|ms|s|m|h)")
_UNIT = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def consul_duration(value: Any, field: str) -> float:
    """Seconds of a Go duration (``10s``, ``1m30s``) or a number of nanoseconds, as Consul reads them.

    Raises:
        InputError: Not a duration.
    """
    if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
        return float(value) / 1e9
    if isinstance(value, str) and _DURATION.fullmatch(value):
        seconds = sum(float(n) * _UNIT[u] for n, u in _PART.findall(value))
        if 0 < seconds <= 86400 * 30:
            return seconds
    raise InputError("must be a duration such as 10s or 1m30s", field=field, source="body")


def _lower(document: Any) -> Any:
    # Consul decodes service definitions case-insensitively (clients send "name", "Name" or "ID").
    if isinstance(document, dict):
        return {
            str(k).lower().replace("_", ""): v if str(k).lower() == "meta" else _lower(v) for k, v in document.items()
        }
    if isinstance(document, list):
        return [_lower(item) for item in document]
    return document


def node_in_of(body: Any) -> schemas.NodeIn:
    """The node of a ``PUT /v1/agent/service/register`` body.

    Raises:
        InputError: A field Consul would refuse (422 naming it).
    """
    if not isinstance(body, dict):
        raise InputError("must be a JSON object", field=None, source="body")
    doc = _lower(body)
    name = doc.get("name")
    if not isinstance(name, str) or not name:
        raise InputError("a service needs its Name", field="Name", source="body")
    service_id = doc.get("id") or name
    meta = doc.get("meta") or {}
    if not isinstance(meta, dict):
        raise InputError("must be an object of strings", field="Meta", source="body")
    version = str(meta.get("version", "0.0.0"))
    try:
        parse_version(version)
    except RangeError:
        version = "0.0.0"
    checks = [c for c in [doc.get("check"), *(doc.get("checks") or [])] if c]
    check: dict[str, Any] | None = None
    if checks:
        first = checks[0]
        if not isinstance(first, dict):
            raise InputError("must be an object", field="Check", source="body")
        after = first.get("deregistercriticalserviceafter")
        common: dict[str, Any] = {
            "deregister_critical_after": consul_duration(after, "Check.DeregisterCriticalServiceAfter")
            if after
            else None,
            "status": first.get("status") or "critical",
        }
        if first.get("ttl"):
            check = {"kind": "ttl", "ttl": consul_duration(first["ttl"], "Check.TTL"), **common}
        elif first.get("http"):
            check = {"kind": "http", "http": first["http"],
                     "interval": consul_duration(first.get("interval") or "10s", "Check.Interval"),
                     "timeout": consul_duration(first.get("timeout") or "10s", "Check.Timeout"), **common}  # fmt: skip
        else:
            raise InputError("only TTL and HTTP checks are supported", field="Check", source="body")
    document = {
        "node_id": service_id, "name": name, "node_type": "service", "version": version,
        "address": doc.get("address") or None, "port": doc.get("port") or None, "tags": doc.get("tags") or [],
        "meta": meta, "check": check,
    }  # fmt: skip
    try:
        return msgspec.convert(document, schemas.NodeIn)
    except msgspec.ValidationError as exc:
        message = str(exc)
        path = message.rpartition("at `$.")[2].rstrip("`") if "at `$." in message else None
        consul_field = {"node_id": "ID", "name": "Name", "address": "Address", "port": "Port", "tags": "Tags",
                        "meta": "Meta"}.get((path or "").split(".")[0].split("[")[0], path)  # fmt: skip
        raise InputError(message.partition(" - at ")[0], field=consul_field, source="body") from None


def check_id_of(check_id: str) -> str:
    """The node id of a check id (``service:<ID>``, or the service ID itself)."""
    return check_id.removeprefix("service:")


def service_of(node: schemas.NodeOut) -> dict[str, Any]:
    """The agent's view of a service (``/v1/agent/services``, the ``Service`` of a health entry)."""
    return {
        "ID": node.node_id, "Service": node.name, "Tags": node.tags, "Meta": node.meta,
        "Address": node.address or "", "Port": node.port or 0, "Weights": {"Passing": 1, "Warning": 1},
        "EnableTagOverride": False, "CreateIndex": node.create_index, "ModifyIndex": node.modify_index,
        "Datacenter": "dc1",
    }  # fmt: skip


def _check(node: schemas.NodeOut) -> dict[str, Any]:
    kind = node.check["kind"] if node.check else "none"
    return {
        "Node": "omninode-bridge", "CheckID": f"service:{node.node_id}",
        "Name": f"Service '{node.name}' check", "Status": node.status, "Notes": "", "Output": node.output,
        "ServiceID": node.node_id, "ServiceName": node.name, "ServiceTags": node.tags, "Type": kind,
        "CreateIndex": node.create_index, "ModifyIndex": node.modify_index,
    }  # fmt: skip


def health_entry(node: schemas.NodeOut) -> dict[str, Any]:
    """One entry of ``/v1/health/service/{name}``."""
    return {
        "Node": {"Node": "omninode-bridge", "Address": node.address or "", "Datacenter": "dc1"},
        "Service": service_of(node),
        "Checks": [_check(node)] if node.check else [],
    }


def checks_of(node: schemas.NodeOut) -> list[dict[str, Any]]:
    """The checks of a service (``/v1/health/checks/{name}``)."""
    return [_check(node)] if node.check else []


_TERM = re.compile(
    r'\s*(?:Service\.Meta\.([A-Za-z0-9_-]+)\s*(==|!=)\s*"([^"]*)"'
    r'|"([^"]*)"\s+in\s+Service\.Tags'
    r'|Service\.Tags\s+contains\s+"([^"]*)"'
    r'|Service\.Service\s*==\s*"([^"]*)"'
    r'|Checks\.Status\s*==\s*"([^"]*)")\s*'
)


class ConsulFilter:
    """A parsed ``filter`` of the supported subset."""

    def __init__(self, expression: str) -> None:
        self.terms: list[tuple[str, ...]] = []
        for part in re.split(r"\band\b", expression):
            match = _TERM.fullmatch(part)
            if match is None:
                raise ProblemError(400, f"Unsupported filter expression {part.strip()!r}: see the README's subset.")
            self.terms.append(match.groups())

    def matches(self, node: schemas.NodeOut) -> bool:
        """Whether every term holds for ``node``."""
        for key, op, value, tag_in, tag_contains, service, status in self.terms:
            if key is not None and (node.meta.get(key) == value) != (op == "=="):
                return False
            if (tag_in or tag_contains) is not None and (
                tag_in if tag_in is not None else tag_contains
            ) not in node.tags:
                return False
            if service is not None and node.name != service:
                return False
            if status is not None and node.status != status:
                return False
        return True
