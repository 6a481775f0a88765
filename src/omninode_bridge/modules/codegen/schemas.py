"""Request and response bodies of the codegen endpoints (the event payloads, which the request endpoints
accept as they are, are in :mod:`.messages`)."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import msgspec

from omninode_bridge.modules.codegen.messages import CurrentStep, Metadata, Progress, SessionStatus

__all__ = [
    "CodegenReply",
    "CodegenStatusAccepted",
    "CodegenStatusUpdate",
    "SessionStatusEntry",
    "SessionTimeline",
]


class CodegenStatusUpdate(msgspec.Struct, forbid_unknown_fields=True):
    """A status update posted over HTTP for a session."""

    status: SessionStatus
    progress_percent: Progress
    current_step: CurrentStep
    metadata: Metadata = msgspec.field(default_factory=dict)


class CodegenStatusAccepted(msgspec.Struct):
    """The status event was accepted and will be published."""

    event_id: uuid.UUID
    correlation_id: str
    status: str = "accepted"


class CodegenReply(msgspec.Struct):
    """The correlated response of a request-reply call."""

    correlation_id: str
    event_type: str
    source: str
    payload: dict[str, Any]


class SessionTimeline(msgspec.Struct):
    """Every status event of a session, oldest first."""

    session_id: uuid.UUID
    latest_status: SessionStatus | None
    events: list[SessionStatusEntry]


class SessionStatusEntry(msgspec.Struct):
    """One recorded status event."""

    event_id: uuid.UUID
    status: str
    progress_percent: float
    current_step: str
    metadata: dict[str, Any]
    correlation_id: str
    occurred_at: dt.datetime
