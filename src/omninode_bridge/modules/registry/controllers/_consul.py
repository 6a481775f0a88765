"""The Consul-compatible subset (``/v1/...``): Consul's paths, JSON field names and blocking queries, so existing
Consul clients work unchanged. Keys come as ``X-Consul-Token`` too; the scope is ``registry``."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, Response, get, put
from litestar.di import NamedDependency
from litestar.params import JSONBody

from omninode_bridge import platform
from omninode_bridge.core.db import UnitOfWork
from omninode_bridge.core.errors import ProblemError
from omninode_bridge.core.inputs import Identifier, param, text
from omninode_bridge.core.openapi import error_responses
from omninode_bridge.modules.registry import schemas
from omninode_bridge.modules.registry.controllers._nodes import INDEX_HEADER, IndexQuery, WaitQuery
from omninode_bridge.modules.registry.services import Catalog, NodeQuery, parse_wait
from omninode_bridge.modules.registry.services._consul import (
    ConsulFilter,
    check_id_of,
    checks_of,
    health_entry,
    node_in_of,
    service_of,
)
from omninode_bridge.modules.registry.state import RegistryState

__all__ = ["ConsulController"]

IdPath = Annotated[str, param(Identifier, path=True)]
NamePath = Annotated[str, param(text(max_length=255, pattern=schemas.SERVICE_NAME), path=True)]
NoteQuery = Annotated[str | None, param(text(max_length=4096))]
_ALL = 100_000  # Consul answers whole lists; the catalog is read in one page of this size


async def _listing(
    catalog: Catalog, state: RegistryState, query: NodeQuery, index: int | None, wait: str | None
) -> tuple[list[schemas.NodeOut], int]:
    seconds = parse_wait(wait, default=300.0, maximum=state.settings.max_wait_seconds)
    current = await catalog.wait(query, index, seconds)
    items, _ = await catalog.find(query, limit=_ALL)
    return items, current


class ConsulController(Controller):
    """Agent service registration, TTL checks, catalog and health reads (scope ``registry``)."""

    path = "/v1"
    tags = ["consul"]
    security = platform.API_KEY_SECURITY
    opt = platform.require_scope("registry")

    @put("/agent/service/register", operation_id="consulRegisterService", summary="Consul: register a service",
         responses=error_responses(body=True), status_code=200)  # fmt: skip
    async def register(
        self, registry: NamedDependency[Catalog], uow: NamedDependency[UnitOfWork], data: JSONBody[dict[str, Any]]
    ) -> None:
        """A Consul service definition (`Name`, `ID`, `Tags`, `Address`, `Port`, `Meta`, one TTL or HTTP
        `Check` with `DeregisterCriticalServiceAfter`); `Meta.version` is the node's semantic version."""
        await registry.register(uow, node_in_of(data))

    @put("/agent/service/deregister/{service_id:str}", operation_id="consulDeregisterService",
         summary="Consul: deregister a service", responses=error_responses({404: "Unknown service"}),
         status_code=200)  # fmt: skip
    async def deregister(
        self, registry: NamedDependency[Catalog], uow: NamedDependency[UnitOfWork], service_id: IdPath
    ) -> None:
        """Remove the service."""
        if not await registry.deregister(uow, service_id):
            raise ProblemError(404, f'Unknown service ID "{service_id}".')

    async def _update(self, registry: Catalog, check_id: str, status: str, note: str | None) -> None:
        await registry.heartbeat(check_id_of(check_id), schemas.Heartbeat(status=status, output=note or ""))  # type: ignore[arg-type]  # status: one of the Consul verbs mapped above

    @put("/agent/check/pass/{check_id:str}", operation_id="consulCheckPass", summary="Consul: TTL pass",
         responses=error_responses({404: "Unknown check", 409: "Not a TTL check"}), status_code=200)  # fmt: skip
    async def check_pass(
        self, registry: NamedDependency[Catalog], check_id: IdPath,
        note: NoteQuery = None,
    ) -> None:  # fmt: skip
        """Set a TTL check passing."""
        await self._update(registry, check_id, "passing", note)

    @put("/agent/check/warn/{check_id:str}", operation_id="consulCheckWarn", summary="Consul: TTL warn",
         responses=error_responses({404: "Unknown check", 409: "Not a TTL check"}), status_code=200)  # fmt: skip
    async def check_warn(
        self, registry: NamedDependency[Catalog], check_id: IdPath,
        note: NoteQuery = None,
    ) -> None:  # fmt: skip
        """Set a TTL check warning."""
        await self._update(registry, check_id, "warning", note)

    @put("/agent/check/fail/{check_id:str}", operation_id="consulCheckFail", summary="Consul: TTL fail",
         responses=error_responses({404: "Unknown check", 409: "Not a TTL check"}), status_code=200)  # fmt: skip
    async def check_fail(
        self, registry: NamedDependency[Catalog], check_id: IdPath,
        note: NoteQuery = None,
    ) -> None:  # fmt: skip
        """Set a TTL check critical."""
        await self._update(registry, check_id, "critical", note)

    @put("/agent/check/update/{check_id:str}", operation_id="consulCheckUpdate", summary="Consul: TTL update",
         responses=error_responses({404: "Unknown check", 409: "Not a TTL check"}, body=True),
         status_code=200)  # fmt: skip
    async def check_update(
        self, registry: NamedDependency[Catalog], check_id: IdPath,
        data: JSONBody[schemas.ConsulCheckUpdate],
    ) -> None:  # fmt: skip
        """Set a TTL check's `Status` and `Output`."""
        await self._update(registry, check_id, data.status, data.output)

    @get("/agent/services", operation_id="consulAgentServices", summary="Consul: the agent's services",
         responses=error_responses())  # fmt: skip
    async def agent_services(self, registry: NamedDependency[Catalog]) -> dict[str, Any]:
        """Every registered service by ID."""
        items, _ = await registry.find(NodeQuery(), limit=_ALL)
        return {n.node_id: service_of(n) for n in items}

    @get("/catalog/services", operation_id="consulCatalogServices", summary="Consul: service names and tags",
         responses=error_responses())  # fmt: skip
    async def catalog_services(
        self, registry: NamedDependency[Catalog], registry_state: NamedDependency[RegistryState],
        index: IndexQuery = None, wait: WaitQuery = None,
    ) -> Response[dict[str, list[str]]]:  # fmt: skip
        """Each service name with the union of its instances' tags (a blocking query)."""
        items, current = await _listing(registry, registry_state, NodeQuery(), index, wait)
        names: dict[str, set[str]] = {}
        for node in items:
            names.setdefault(node.name, set()).update(node.tags)
        return Response({k: sorted(v) for k, v in names.items()}, headers={INDEX_HEADER: str(current)})

    @get("/catalog/service/{name:str}", operation_id="consulCatalogService", summary="Consul: a service's instances",
         responses=error_responses())  # fmt: skip
    async def catalog_service(
        self, registry: NamedDependency[Catalog], registry_state: NamedDependency[RegistryState], name: NamePath,
        tag: Annotated[str | None, param(text(max_length=255))] = None, index: IndexQuery = None,
        wait: WaitQuery = None,
    ) -> Response[list[dict[str, Any]]]:  # fmt: skip
        """The instances of `name` (any health), Consul's catalog fields."""
        query = NodeQuery(name=name, tags=[tag] if tag else [])
        items, current = await _listing(registry, registry_state, query, index, wait)
        body = [
            {"Node": "omninode-bridge", "Address": n.address or "", "Datacenter": "dc1", "ServiceID": n.node_id,
             "ServiceName": n.name, "ServiceTags": n.tags, "ServiceAddress": n.address or "",
             "ServicePort": n.port or 0, "ServiceMeta": n.meta, "CreateIndex": n.create_index,
             "ModifyIndex": n.modify_index}
            for n in items
        ]  # fmt: skip
        return Response(body, headers={INDEX_HEADER: str(current)})

    @get("/health/service/{name:str}", operation_id="consulHealthService", summary="Consul: a service's health",
         responses=error_responses({400: "Unsupported filter expression"}))  # fmt: skip
    async def health_service(
        self, request: Request[Any, Any, Any], registry: NamedDependency[Catalog],
        registry_state: NamedDependency[RegistryState], name: NamePath,
        tag: Annotated[str | None, param(text(max_length=255))] = None,
        filter_: Annotated[str | None, param(text(max_length=1024), name="filter")] = None,
        index: IndexQuery = None, wait: WaitQuery = None,
    ) -> Response[list[dict[str, Any]]]:  # fmt: skip
        """Instances of `name` with their checks; `passing` keeps passing ones only; `tag`, `filter`."""
        passing = "passing" in request.query_params and request.query_params.get("passing") not in ("0", "false")
        condition = ConsulFilter(filter_) if filter_ else None
        query = NodeQuery(name=name, tags=request.query_params.getall("tag", []) if tag else [],
                          status="passing" if passing else None)  # fmt: skip
        items, current = await _listing(registry, registry_state, query, index, wait)
        body = [health_entry(n) for n in items if condition is None or condition.matches(n)]
        return Response(body, headers={INDEX_HEADER: str(current)})

    @get("/health/checks/{name:str}", operation_id="consulHealthChecks", summary="Consul: a service's checks",
         responses=error_responses())  # fmt: skip
    async def health_checks(
        self, registry: NamedDependency[Catalog], registry_state: NamedDependency[RegistryState], name: NamePath,
        index: IndexQuery = None, wait: WaitQuery = None,
    ) -> Response[list[dict[str, Any]]]:  # fmt: skip
        """The checks of every instance of `name`."""
        items, current = await _listing(registry, registry_state, NodeQuery(name=name), index, wait)
        return Response([c for n in items for c in checks_of(n)], headers={INDEX_HEADER: str(current)})
