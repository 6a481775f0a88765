"""A run as it goes: ``GET /workflows/{id}/events`` (Server-Sent Events) and the ``/workflows/{id}/view`` page."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from litestar import Controller, MediaType, Request, Response, get
from litestar.di import NamedDependency
from litestar.params import FromPath
from litestar.response import ServerSentEvent

from omninode_bridge import platform
from omninode_bridge.core.errors import ProblemError
from omninode_bridge.core.openapi import error_responses
from omninode_bridge.core.pages import page_response
from omninode_bridge.modules.workflow.controllers._runs import admit
from omninode_bridge.modules.workflow.services import run_events
from omninode_bridge.modules.workflow.state import WorkflowRuntime

__all__ = ["MAX_VIEWERS", "WorkflowLiveController"]

#: Open streams one process serves (each reads its run's rows when it changes); more are answered 503.
MAX_VIEWERS = 200
_PAGE = Path(__file__).resolve().parent.parent / "static" / "view.html"
_EVENTS = (
    "The run as Server-Sent Events (`text/event-stream`): `snapshot` (the run with every task, as "
    "`GET /workflows/{id}`), then `task` (a task whose state changed, with its output) and `run` (the run's "
    "state changed), and finally `end` (the final run), after which the stream closes. Each `data` is JSON."
)


class WorkflowLiveController(Controller):
    """A run's progress, for programs (SSE) and people (the page)."""

    path = "/workflows"
    tags = ["workflow"]

    @get("/{run_id:uuid}/events", operation_id="streamWorkflowEvents", summary="A run's progress as Server-Sent Events",
         opt=platform.require_scope("workflow"), security=platform.API_KEY_SECURITY,
         media_type="text/event-stream", response_description=_EVENTS,
         responses=error_responses({404: "No such run"}))  # fmt: skip
    async def events(
        self, request: Request[Any, Any, Any], workflow: NamedDependency[WorkflowRuntime], run_id: FromPath[uuid.UUID]
    ) -> ServerSentEvent:
        """A full snapshot first, then each change as it is committed (by any app process), until the run ends.
        A reconnecting client gets a new snapshot. Works across processes: changes are announced on a Redis
        channel, and the stream also re-reads the run's rows every 2 s (0.5 s while Redis is away)."""
        async with workflow.database.unit_of_work() as uow:
            await admit(request, await workflow.runs.get(uow, run_id))
        if workflow.live.viewers >= MAX_VIEWERS:
            raise ProblemError(503, "Too many live views are open on this instance.", headers={"Retry-After": "5"})
        return ServerSentEvent(run_events(workflow.database, workflow.runs, workflow.live, run_id),
                               headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})  # fmt: skip

    @get("/{run_id:uuid}/view", operation_id="getWorkflowView", summary="A page showing a run live",
         opt=platform.OPTIONAL_AUTH, media_type=MediaType.HTML, security=[],
         responses=error_responses({404: "The path is not a run id (a UUID)"}))  # fmt: skip
    async def view(self, run_id: FromPath[uuid.UUID]) -> Response[str]:
        """A self-contained HTML page: the run's DAG (tasks coloured by state, edges by dependency), updated
        from `GET /workflows/{id}/events`; click a task for its attempts, timings and output. Give it a key with
        scope `workflow` in the form or as `#key=...` (the fragment never reaches the server)."""
        del run_id  # the page reads it from its own address; it holds no data
        return page_response(_PAGE)
