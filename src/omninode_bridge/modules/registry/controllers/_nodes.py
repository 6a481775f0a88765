"""``/registry``: nodes (register, deregister, heartbeat, discovery with blocking queries), capabilities, tools."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, Response, delete, get, post, put
from litestar.di import NamedDependency
from litestar.params import JSONBody

from omninode_bridge import platform
from omninode_bridge.core.db import UnitOfWork
from omninode_bridge.core.errors import ProblemError
from omninode_bridge.core.inputs import Identifier, InputError, param, text
from omninode_bridge.core.inputs import limit as page_size
from omninode_bridge.core.openapi import documented, error_responses
from omninode_bridge.core.paging import BigintCursorQuery, bigint_cursor
from omninode_bridge.modules.registry import schemas
from omninode_bridge.modules.registry.semver import RangeError, parse_range
from omninode_bridge.modules.registry.services import WAIT_PATTERN, Catalog, NodeQuery, parse_wait
from omninode_bridge.modules.registry.state import RegistryState

__all__ = ["INDEX_HEADER", "NodeController", "node_query"]

INDEX_HEADER = "X-Consul-Index"
NodeIdPath = Annotated[str, param(Identifier, path=True, description="The node's id.")]
NameQuery = Annotated[str | None, param(text(max_length=255, pattern=schemas.SERVICE_NAME))]
LabelQuery = Annotated[str | None, param(text(max_length=255))]
NodeTypeQuery = Annotated[
    str | None, param(text(max_length=32, pattern="orchestrator|reducer|effect|compute|service|mcp_server"))
]
StatusQuery = Annotated[str | None, param(text(max_length=16, pattern="passing|warning|critical"))]
RangeQuery = Annotated[
    str | None,
    param(text(max_length=256), description="A semver range: ^1.2, ~1.2.3, >=1.0 <2, 1.x, with || alternatives."),
]
IndexQuery = Annotated[
    int | None, param(description="Blocking query: hold until the result's index passes this.", ge=0, le=2**62)
]
WaitQuery = Annotated[
    str | None,
    param(text(max_length=12, pattern=WAIT_PATTERN), description="Longest hold of a blocking query (30s, 5m)."),
]
Limit = Annotated[int, param(Annotated[int, page_size(500)])]
_REGISTER_RESPONSES = error_responses(
    {
        200: documented(schemas.NodeOut, "Already registered with these attributes"),
        201: documented(schemas.NodeOut, "Registered or updated"),
    },
    body=True,
)
_LIST_RESPONSES = error_responses(
    {200: documented(schemas.NodePage, "The matching nodes; X-Consul-Index holds the query index")}
)


def node_query(
    request: Request[Any, Any, Any], *, name: str | None, node_type: str | None, tag: str | None,
    capability: str | None, version: str | None, status: str | None,
) -> NodeQuery:  # fmt: skip
    """The discovery filters of a request (``meta.<key>=value`` query parameters included)."""
    meta: dict[str, str] = {}
    for key, value in request.query_params.items():
        if key.startswith("meta."):
            field = key.removeprefix("meta.")
            if not field or len(field) > 128 or len(value) > 512:
                raise InputError("meta filters are meta.<key>=<value>", field=key, source="query")
            meta[field] = value
    parsed = None
    if version is not None:
        try:
            parsed = parse_range(version)
        except RangeError as exc:
            raise InputError(str(exc), field="version", source="query") from None
    tags = request.query_params.getall("tag", []) if tag is not None else []
    return NodeQuery(name=name, node_type=node_type, tags=tags, capability=capability, version=parsed,
                     status=status, meta=meta)  # fmt: skip


class NodeController(Controller):
    """Nodes, their health and discovery (scope ``registry``)."""

    path = "/registry"
    tags = ["registry"]
    security = platform.API_KEY_SECURITY
    opt = platform.require_scope("registry")

    @post("/nodes", operation_id="registerNode", summary="Register or update a node (idempotent by node_id)",
          responses=_REGISTER_RESPONSES)  # fmt: skip
    async def register(
        self, registry: NamedDependency[Catalog], uow: NamedDependency[UnitOfWork], data: JSONBody[schemas.NodeIn]
    ) -> Response[schemas.NodeOut]:
        """Register a node with its capabilities, tools and health check; a changed re-registration updates it."""
        node, changed = await registry.register(uow, data)
        return Response(node, status_code=201 if changed else 200)

    @get("/nodes", operation_id="listNodes", summary="Discover nodes",
         responses=_LIST_RESPONSES)  # fmt: skip
    async def list_nodes(
        self, request: Request[Any, Any, Any], registry: NamedDependency[Catalog],
        registry_state: NamedDependency[RegistryState],
        name: NameQuery = None, node_type: NodeTypeQuery = None, tag: LabelQuery = None,
        capability: NameQuery = None, version: RangeQuery = None, status: StatusQuery = None,
        index: IndexQuery = None, wait: WaitQuery = None, cursor: BigintCursorQuery = None, limit: Limit = 100,
    ) -> Response[schemas.NodePage]:  # fmt: skip
        """Nodes matching every filter given: `name`, `node_type`, `tag` (repeatable), `capability` with a semver
        range in `version` (without capability: the node's own version), `status`, and `meta.<key>=<value>`.
        With `index` the request is held until this query's result changes or `wait` passes."""
        query = node_query(request, name=name, node_type=node_type, tag=tag, capability=capability,
                           version=version, status=status)  # fmt: skip
        after = bigint_cursor(cursor)
        seconds = parse_wait(wait, default=300.0, maximum=registry_state.settings.max_wait_seconds)
        current = await registry.wait(query, index, seconds)
        items, next_cursor = await registry.find(query, limit=limit, after=after)
        return Response(schemas.NodePage(items=items, next_cursor=next_cursor, index=current),
                        headers={INDEX_HEADER: str(current)})  # fmt: skip

    @get("/nodes/{node_id:str}", operation_id="getNode", summary="One node",
         responses=error_responses({404: "No such node"}))  # fmt: skip
    async def get_node(self, registry: NamedDependency[Catalog], node_id: NodeIdPath) -> schemas.NodeOut:
        """A registered node with its health."""
        node = await registry.get(node_id)
        if node is None:
            raise ProblemError(404, f"No node {node_id!r} is registered.")
        return node

    @delete("/nodes/{node_id:str}", operation_id="deregisterNode", summary="Deregister a node",
            responses=error_responses({404: "No such node"}), status_code=204)  # fmt: skip
    async def deregister(
        self, registry: NamedDependency[Catalog], uow: NamedDependency[UnitOfWork], node_id: NodeIdPath
    ) -> None:
        """Remove the node from discovery (an event on the registry topic)."""
        if not await registry.deregister(uow, node_id):
            raise ProblemError(404, f"No node {node_id!r} is registered.")

    @put("/nodes/{node_id:str}/heartbeat", operation_id="heartbeatNode", summary="TTL heartbeat",
         responses=error_responses({404: "No such node", 409: "The node has no TTL check"}, body=True))  # fmt: skip
    async def heartbeat(
        self, registry: NamedDependency[Catalog], node_id: NodeIdPath, data: JSONBody[schemas.Heartbeat | None] = None
    ) -> schemas.NodeOut:
        """Renew the node's TTL (a pass, or `status` warning/critical with `output`)."""
        # No unit of work per beat: one that changes nothing touches no database (Catalog.heartbeat).
        return await registry.heartbeat(node_id, data or schemas.Heartbeat())

    @get("/capabilities", operation_id="listCapabilities", summary="Capabilities across the catalog",
         responses=error_responses())  # fmt: skip
    async def capabilities(self, registry: NamedDependency[Catalog]) -> list[schemas.CapabilitySummary]:
        """Each capability with the versions provided and how many nodes (and passing nodes) provide it."""
        return await registry.capabilities()

    @get("/tools", operation_id="searchTools", summary="Search tools across the catalog",
         responses=error_responses())  # fmt: skip
    async def tools(
        self, registry: NamedDependency[Catalog],
        q: Annotated[str, param(text(min_length=1, max_length=256), description="Words of a name or description.")],
        node_type: NodeTypeQuery = None,
        status: Annotated[
            str, param(text(max_length=16, pattern="passing|warning|critical|any"),
                       description="Providers' status; `any` for all. Default: passing.")] = "passing",
        limit: Annotated[int, param(Annotated[int, page_size(100)])] = 20,
    ) -> schemas.ToolPage:  # fmt: skip
        """Tools whose name or description match (full-text, ranked), of healthy providers unless asked."""
        hits = await registry.tools(q, node_type=node_type, status=None if status == "any" else status, limit=limit)
        return schemas.ToolPage(items=hits)
