"""The live view: ``GET /hooks/stream`` (Server-Sent Events), its tickets, and the ``/hooks/live`` page."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from litestar import Controller, MediaType, Request, Response, get, post
from litestar.di import NamedDependency
from litestar.response import ServerSentEvent

from omninode_bridge import platform
from omninode_bridge.core.errors import ProblemError
from omninode_bridge.core.inputs import Identifier, Namespace, param, text
from omninode_bridge.core.pages import page_response
from omninode_bridge.modules.hooks import schemas
from omninode_bridge.modules.hooks.services import StreamFilter, sse_events
from omninode_bridge.modules.hooks.state import HooksState

__all__ = ["HookLiveController"]

_Short = Annotated[str, text(max_length=64)]
# The page holds no data; its script reads the key from the URL fragment or a form, never from the server.
_PAGE = Path(__file__).resolve().parent.parent / "static" / "live.html"


class HookLiveController(Controller):
    """Hooks as they arrive, for programs (SSE) and people (the live page)."""

    path = "/hooks"
    tags = ["hooks"]

    @post("/stream/tickets", operation_id="createHookStreamTicket", summary="A ticket to open the stream",
          status_code=201, opt=platform.require_scope("hooks"), security=platform.API_KEY_SECURITY,
          responses=platform.AUTH_RESPONSES)  # fmt: skip
    async def ticket(self, request: Request[Any, Any, Any], hooks: NamedDependency[HooksState]) -> schemas.StreamTicket:
        """Browsers' EventSource cannot send headers: it opens `/hooks/stream?ticket=...` with a ticket bound
        to this key instead. Tickets can be reused until they expire (so the browser can reconnect)."""
        principal = platform.principal_of(request)
        ticket = await hooks.tickets.get().issue(principal.key_id, principal.namespaces)
        return schemas.StreamTicket(ticket=ticket, expires_in=hooks.tickets.get().ttl)

    @get("/stream", operation_id="streamHooks", summary="Hooks as Server-Sent Events",
         opt=platform.OPTIONAL_AUTH, security=platform.API_KEY_SECURITY, responses=platform.AUTH_RESPONSES,
         media_type="text/event-stream")  # fmt: skip
    async def stream(
        self,
        request: Request[Any, Any, Any],
        hooks: NamedDependency[HooksState],
        source: Annotated[schemas.SourceName | None, param(schemas.SourceName)] = None,
        session_id: Annotated[Identifier | None, param(Identifier)] = None,
        event_type: Annotated[schemas.EventType | None, param(schemas.EventType)] = None,
        namespace: Annotated[Namespace | None, param(Namespace, description="Only this namespace.")] = None,
        ticket: Annotated[str | None, param(_Short, description="From POST /hooks/stream/tickets")] = None,
        last_event_id: Annotated[
            str | None, param(_Short, description="Resume after this event id (else the Last-Event-ID header)")
        ] = None,
    ) -> ServerSentEvent:
        """Each accepted hook as an SSE `hook` event whose data is the hook (with redacted data) and whose id is
        its position in the live stream. Filter by source, session, event type and namespace (a restricted key,
        or a ticket it issued, sees only its namespaces). Resumes after
        `Last-Event-ID` (header or parameter), from the database when the gap is older than the live buffer.
        Authenticate with an API key (scope `hooks`) or a ticket."""
        principal = platform.principal_or_none(request)
        if principal is None:
            grant = await hooks.tickets.get().redeem(ticket) if ticket is not None else None
            if grant is None:
                raise ProblemError(
                    401, "An API key with scope 'hooks' or a valid ticket is required.",
                    headers={"WWW-Authenticate": 'Bearer realm="omninode-bridge"'},
                )  # fmt: skip
            allowed = grant.namespaces
        elif not principal.has_scope("hooks"):
            raise ProblemError(403, "This API key lacks the 'hooks' scope.")
        else:
            allowed = principal.namespaces
        if namespace is not None:
            if allowed is not None and namespace not in allowed:
                raise ProblemError(403, f"This API key may not use the namespace '{namespace}'.")
            allowed = frozenset({namespace})
        wanted = StreamFilter(source=source, session_id=session_id, event_type=event_type, namespaces=allowed)
        resume = request.headers.get("last-event-id") or last_event_id
        return ServerSentEvent(await sse_events(hooks.live.get(), hooks.database, wanted, resume))

    @get("/live", operation_id="getHooksLivePage", summary="A page showing hooks as they arrive",
         opt=platform.OPTIONAL_AUTH, media_type=MediaType.HTML, include_in_schema=True, security=[],
         responses=platform.AUTH_RESPONSES)  # fmt: skip
    async def live(self) -> Response[str]:
        """A small HTML page: give it a key with scope `hooks` (in the form, or as `#key=...` in the URL, which
        never reaches the server) and it shows hooks arriving, with filters."""
        return page_response(_PAGE)
