"""``/v0``: the official MCP Registry's API shape over published ``server.json`` versions (scope ``registry``).

A server name holds one ``/``; clients URL-encode it (``io.github.user%2Fweather``) and both forms route here.
"""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, get, post
from litestar.di import NamedDependency
from litestar.params import JSONBody

from omninode_bridge import platform
from omninode_bridge.core.db import UnitOfWork
from omninode_bridge.core.errors import ProblemError
from omninode_bridge.core.inputs import AwareDatetime, check_datetime_range, param, text
from omninode_bridge.core.inputs import limit as page_size
from omninode_bridge.core.openapi import error_responses
from omninode_bridge.core.paging import BigintCursorQuery, bigint_cursor
from omninode_bridge.modules.registry import server_json
from omninode_bridge.modules.registry.services import McpRegistry

__all__ = ["McpController"]

Part = Annotated[str, param(text(min_length=1, max_length=200, pattern=r"[a-zA-Z0-9._-]+"), path=True)]
VersionPath = Annotated[str, param(text(min_length=1, max_length=255), path=True)]


class McpController(Controller):
    """Publish and read MCP server versions (no namespace ownership proof: the key's scope is the permission)."""

    path = "/v0"
    tags = ["mcp-registry"]
    security = platform.API_KEY_SECURITY
    opt = platform.require_scope("registry")

    @post("/publish", operation_id="publishMcpServer", summary="Publish a server.json version", status_code=200,
          responses=error_responses({409: "This version is already published"}, body=True))  # fmt: skip
    async def publish(
        self,
        mcp: NamedDependency[McpRegistry],
        uow: NamedDependency[UnitOfWork],
        data: JSONBody[server_json.ServerJson],
    ) -> server_json.ServerResponse:
        """Validate and store a `server.json` (schema 2025-12-11); the highest version becomes `isLatest`."""
        return await mcp.publish(uow, data)

    @get("/servers", operation_id="listMcpServers", summary="List published MCP servers",
         responses=error_responses())  # fmt: skip
    async def servers(
        self, mcp: NamedDependency[McpRegistry],
        search: Annotated[str | None, param(text(max_length=200), description="Part of the name.")] = None,
        cursor: BigintCursorQuery = None,
        limit: Annotated[int, param(Annotated[int, page_size(100)])] = 30,
        updated_since: Annotated[AwareDatetime | None, param(description="RFC 3339.")] = None,
        version: Annotated[str | None, param(text(max_length=16, pattern="latest"),
                                             description="`latest`: only each server's latest version.")] = None,
    ) -> server_json.ServerList:  # fmt: skip
        """Published versions, in publication order, with `metadata.nextCursor`."""
        check_datetime_range(updated_since, "updated_since", source="query")
        return await mcp.page(search=search, after=bigint_cursor(cursor), limit=limit, updated_since=updated_since,
                              latest_only=version == "latest")  # fmt: skip

    @get("/servers/{namespace:str}/{server:str}/versions", operation_id="listMcpServerVersions",
         summary="Versions of an MCP server", responses=error_responses({404: "No such server"}))  # fmt: skip
    async def versions(
        self, mcp: NamedDependency[McpRegistry], namespace: Part, server: Part
    ) -> list[server_json.ServerResponse]:
        """Every published version of `namespace/server`."""
        found = await mcp.versions(f"{namespace}/{server}")
        if not found:
            raise ProblemError(404, f"No MCP server {namespace}/{server} is published.")
        return found

    @get("/servers/{namespace:str}/{server:str}/versions/{version:str}", operation_id="getMcpServerVersion",
         summary="One version of an MCP server", responses=error_responses({404: "No such version"}))  # fmt: skip
    async def version(
        self, mcp: NamedDependency[McpRegistry], namespace: Part, server: Part, version: VersionPath
    ) -> server_json.ServerResponse:
        """One version (`latest` for the latest)."""
        found = await mcp.version(f"{namespace}/{server}", version)
        if found is None:
            raise ProblemError(404, f"No version {version} of {namespace}/{server} is published.")
        return found
