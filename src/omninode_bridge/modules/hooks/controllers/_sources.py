"""Webhook sources CRUD (scope ``admin``)."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, delete, get, patch, post
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody

from omninode_bridge import platform
from omninode_bridge.core.db import UnitOfWork
from omninode_bridge.core.errors import ProblemError
from omninode_bridge.core.openapi import error_responses
from omninode_bridge.modules.hooks import schemas
from omninode_bridge.modules.hooks.services import WebhookSourceService, to_source

__all__ = ["WebhookSourceController"]


_NOT_FOUND = error_responses({404: "No webhook source with this name"})


class WebhookSourceController(Controller):
    """Third parties allowed to post signed webhooks to `POST /hooks/{name}`. Requires the ``admin`` scope."""

    path = "/hooks/sources"
    tags = ["hooks"]
    security = platform.API_KEY_SECURITY
    opt = platform.require_scope("admin")

    @get("/", operation_id="listWebhookSources", summary="List webhook sources", responses=platform.AUTH_RESPONSES)
    async def list_sources(self, uow: NamedDependency[UnitOfWork]) -> list[schemas.WebhookSource]:
        """Every source; secrets are never shown, only how many there are."""
        return await WebhookSourceService(uow).list()

    @post("/", operation_id="createWebhookSource", summary="Register a webhook source",
          responses=error_responses({409: "A source with this name exists"}, body=True))  # fmt: skip
    async def create(
        self, request: Request[Any, Any, Any], uow: NamedDependency[UnitOfWork],
        data: JSONBody[schemas.WebhookSourceCreate],
    ) -> schemas.WebhookSource:  # fmt: skip
        """Register a source with its signing scheme (`standard_webhooks`, `github` or `none`) and secrets, and
        where its event type comes from (a header or a JSON path). Audited."""
        return await WebhookSourceService(uow).create(data, actor=platform.Actor.from_request(request))

    @get("/{name:str}", operation_id="getWebhookSource", summary="One webhook source",
         responses=_NOT_FOUND)  # fmt: skip
    async def get_source(self, uow: NamedDependency[UnitOfWork], name: FromPath[str]) -> schemas.WebhookSource:
        """A source (404 if unknown)."""
        row = await WebhookSourceService(uow).get(name)
        if row is None:
            raise ProblemError(404, f"No webhook source named {name}.")
        return to_source(row)

    @patch("/{name:str}", operation_id="updateWebhookSource", summary="Change a webhook source",
           responses=error_responses({404: "No webhook source with this name"}, body=True))  # fmt: skip
    async def update(
        self, request: Request[Any, Any, Any], uow: NamedDependency[UnitOfWork], name: FromPath[str],
        data: JSONBody[schemas.WebhookSourceUpdate],
    ) -> schemas.WebhookSource:  # fmt: skip
        """Change fields; `secrets` replaces the list. Rotate a secret by adding the new one next to the old,
        switching the sender, then removing the old one. Audited."""
        return await WebhookSourceService(uow).update(name, data, actor=platform.Actor.from_request(request))

    @delete("/{name:str}", operation_id="deleteWebhookSource", summary="Remove a webhook source",
            responses=_NOT_FOUND)  # fmt: skip
    async def remove(
        self, request: Request[Any, Any, Any], uow: NamedDependency[UnitOfWork], name: FromPath[str]
    ) -> None:
        """Remove a source; its stored events stay. Audited."""
        await WebhookSourceService(uow).delete(name, actor=platform.Actor.from_request(request))
