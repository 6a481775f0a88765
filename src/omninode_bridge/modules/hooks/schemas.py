"""Request, response and event bodies of the hooks module."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated, Any, Literal

import msgspec

from omninode_bridge.core.inputs import (
    AwareDatetime,
    Identifier,
    Namespace,
    Text,
    anchored,
    text,
)

__all__ = [
    "DEFAULT_NAMESPACE",
    "EVENT_TYPE_PATTERN",
    "RESERVED_SOURCE_NAMES",
    "ClaudeCodeHookIn",
    "HookAccepted",
    "HookBatch",
    "HookBatchAccepted",
    "HookEvent",
    "HookEventIn",
    "HookEventPage",
    "HookEventReceived",
    "HookSessionDetail",
    "HookSessionPage",
    "HookSessionSummary",
    "HookStats",
    "SigningScheme",
    "SourceStat",
    "StreamTicket",
    "ToolCall",
    "ToolStat",
    "WebhookSource",
    "WebhookSourceCreate",
    "WebhookSourceUpdate",
]

#: ``pre_tool_use``, ``service_started``, or any dotted name such as ``github.push`` (anchored: no trailing newline).
EVENT_TYPE_PATTERN = anchored(r"[A-Za-z][A-Za-z0-9_-]*(\.[A-Za-z0-9_-]+)*")
#: The namespace of hooks that name none (and of every hook stored before namespaces existed).
DEFAULT_NAMESPACE = "default"
#: Path segments under /hooks that are endpoints, so no webhook source may take them as its name.
RESERVED_SOURCE_NAMES = frozenset({"batch", "claude-code", "sources", "events", "sessions", "stats", "stream", "live"})

SourceName = Annotated[
    str, msgspec.Meta(min_length=1, max_length=100, pattern=anchored(r"[A-Za-z0-9][A-Za-z0-9_.:@/-]*"))
]
EventType = Annotated[str, msgspec.Meta(min_length=1, max_length=128, pattern=EVENT_TYPE_PATTERN)]
CorrelationId = Annotated[str, msgspec.Meta(min_length=1, max_length=128, pattern=anchored(r"[A-Za-z0-9._:\-]+"))]
#: A Claude Code ``hook_event_name``: ``PreToolUse``, ``Stop``, ... and whatever it adds later.
HookEventName = Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=anchored(r"[A-Za-z][A-Za-z0-9_]*"))]
#: A short label chosen by Claude Code (``permission_mode``, SessionStart ``source``, ``reason``, ``trigger``).
Label = Annotated[str, text(max_length=255)]
#: Free text that is only stored (prompts, messages, errors): terminal output may hold escape sequences, so
#: only NUL is refused (by the request's JSON check); the body size limit bounds it.
FreeText = str
SigningScheme = Literal["standard_webhooks", "github", "none"]


class HookEventIn(msgspec.Struct, forbid_unknown_fields=True):
    """A hook event posted by a service or an AI agent."""

    source: Annotated[SourceName, msgspec.Meta(description="The service or agent that sends the hook.")]
    event_type: Annotated[
        EventType,
        msgspec.Meta(description="pre_tool_use, post_tool_use, service_started, session_start, ... or a dotted name."),
    ]
    session_id: Identifier | None = None
    correlation_id: CorrelationId | None = None
    namespace: (
        Annotated[
            Namespace,
            msgspec.Meta(
                description="Default: the key's namespace when it is restricted to exactly one, else 'default'."
            ),
        ]
        | None
    ) = None
    tool_name: Identifier | None = None
    tool_call_id: (
        Annotated[Identifier, msgspec.Meta(description="Pairs a pre_tool_use with its post_tool_use.")] | None
    ) = None
    timestamp: (
        Annotated[
            AwareDatetime,
            msgspec.Meta(description="When it happened (RFC 3339 with a timezone); default: on receipt."),
        ]
        | None
    ) = None
    data: Annotated[dict[str, Any], msgspec.Meta(description="Free JSON; secrets are redacted before storage.")] = (
        msgspec.field(default_factory=dict)
    )


class ClaudeCodeHookIn(msgspec.Struct):
    """A Claude Code hook event exactly as Claude Code sends it on a command hook's stdin.

    Fields not listed here (added by later Claude Code versions) are accepted; the whole payload is kept
    in the stored event's ``data``.
    """

    session_id: Identifier
    hook_event_name: Annotated[
        HookEventName,
        msgspec.Meta(
            description="PreToolUse, PostToolUse, PostToolUseFailure, UserPromptSubmit, Stop, SubagentStop, "
            "SessionStart, SessionEnd, Notification, PreCompact, ..."
        ),
    ]
    transcript_path: Text | None = None
    cwd: Text | None = None
    permission_mode: Label | None = None
    tool_name: Identifier | None = None
    tool_input: Any = None
    tool_response: Any = None
    tool_use_id: (
        Annotated[Identifier, msgspec.Meta(description="Pairs PreToolUse with PostToolUse[Failure].")] | None
    ) = None
    error: Annotated[Any, msgspec.Meta(description="PostToolUseFailure: what went wrong.")] = None
    is_interrupt: bool | None = None
    prompt: FreeText | None = None
    source: Annotated[Label, msgspec.Meta(description="SessionStart: startup, resume, clear or compact.")] | None = None
    reason: (
        Annotated[Label, msgspec.Meta(description="SessionEnd: clear, logout, prompt_input_exit, other...")] | None
    ) = None
    message: FreeText | None = None
    notification_type: Label | None = None
    trigger: Annotated[Label, msgspec.Meta(description="PreCompact: manual or auto.")] | None = None
    custom_instructions: FreeText | None = None
    stop_hook_active: bool | None = None
    agent_id: Identifier | None = None
    agent_type: Label | None = None
    agent_transcript_path: Text | None = None
    model: Label | None = None


class HookBatch(msgspec.Struct, forbid_unknown_fields=True):
    """Up to 1,000 hook events accepted in one transaction."""

    events: Annotated[list[HookEventIn], msgspec.Meta(min_length=1, max_length=1000)]


class HookAccepted(msgspec.Struct):
    """The answer to a posted hook: ``accepted`` (202) or ``duplicate`` (200, the original event)."""

    event_id: uuid.UUID
    correlation_id: str
    status: Literal["accepted", "duplicate"] = "accepted"


class HookBatchAccepted(msgspec.Struct):
    """The answer to a batch: its id and each event's id, in request order."""

    batch_id: uuid.UUID
    accepted: int
    events: list[HookAccepted]
    status: Literal["accepted", "duplicate"] = "accepted"


class HookEventReceived(msgspec.Struct, kw_only=True):
    """Payload of the ``HookEventReceived`` event on ``omninode_bridge_hook_events_v1`` (data is redacted)."""

    kind: Literal["hook", "webhook"]
    source: str
    namespace: str = DEFAULT_NAMESPACE
    event_type: str
    session_id: str | None = None
    correlation_id: str
    tool_name: str | None = None
    tool_call_id: str | None = None
    occurred_at: dt.datetime
    data: dict[str, Any] | None
    data_truncated: bool = False
    body_hash: str | None = None
    replay: bool = False


class HookEvent(msgspec.Struct):
    """A stored hook event."""

    id: int
    event_id: uuid.UUID
    kind: str
    source: str
    namespace: str
    event_type: str
    session_id: str | None
    correlation_id: str
    tool_name: str | None
    tool_call_id: str | None
    occurred_at: dt.datetime
    received_at: dt.datetime
    status: str
    processed_at: dt.datetime | None
    data: dict[str, Any]
    redacted: bool
    body_hash: str | None = None
    content_type: str | None = None
    batch_id: uuid.UUID | None = None


class HookEventPage(msgspec.Struct):
    """Events newest first; pass ``next_cursor`` as ``cursor`` for the next page."""

    items: list[HookEvent]
    next_cursor: str | None


class ToolCall(msgspec.Struct):
    """A tool call: its pre and post events paired by ``tool_call_id``."""

    tool_call_id: str
    tool_name: str | None
    pre_event_id: uuid.UUID | None
    post_event_id: uuid.UUID | None
    started_at: dt.datetime | None
    finished_at: dt.datetime | None
    duration_ms: float | None
    outcome: str
    error: str | None


class HookSessionSummary(msgspec.Struct):
    """A session as the processor maintains it."""

    session_id: str
    source: str
    namespace: str
    status: str
    first_seen: dt.datetime
    last_seen: dt.datetime
    ended_at: dt.datetime | None
    event_count: int
    counts_by_type: dict[str, int]


class HookSessionPage(msgspec.Struct):
    """Sessions, most recently active first."""

    items: list[HookSessionSummary]
    next_cursor: str | None


class HookSessionDetail(msgspec.Struct):
    """A session's timeline: its events oldest first and its paired tool calls."""

    session: HookSessionSummary
    events: list[HookEvent]
    tool_calls: list[ToolCall]
    events_truncated: bool = False


class SourceStat(msgspec.Struct):
    """Processed events of one source and type."""

    source: str
    event_type: str
    count: int
    last_seen: dt.datetime


class ToolStat(msgspec.Struct):
    """Calls of one tool and their durations (completed calls only)."""

    tool_name: str
    calls: int
    completed: int
    errors: int
    p50_ms: float | None
    p95_ms: float | None
    max_ms: float | None


class HookStats(msgspec.Struct):
    """Per source/type counts and per tool durations."""

    sources: list[SourceStat]
    tools: list[ToolStat]
    events_total: int
    sessions_total: int


class WebhookSourceCreate(msgspec.Struct, forbid_unknown_fields=True):
    """A third-party webhook source."""

    name: Annotated[
        str, msgspec.Meta(pattern=anchored(r"[a-z0-9][a-z0-9_.-]{0,63}"), description="Used in POST /hooks/{name}.")
    ]
    scheme: SigningScheme
    secrets: Annotated[
        list[Annotated[str, text(min_length=8, max_length=500)]],
        msgspec.Meta(
            max_length=5,
            description="Signing secrets (whsec_... base64 for standard_webhooks); several during a rotation.",
        ),
    ] = msgspec.field(default_factory=list)
    description: Annotated[str, text(max_length=500, multiline=True)] = ""
    namespace: Annotated[Namespace, msgspec.Meta(description="The namespace of the hooks it posts.")] = (
        DEFAULT_NAMESPACE
    )
    event_type_header: (
        Annotated[
            str,
            msgspec.Meta(pattern=anchored(r"[A-Za-z0-9-]{1,128}"), description="Take the event type from this header."),
        ]
        | None
    ) = None
    event_type_path: (
        Annotated[
            str,
            msgspec.Meta(
                pattern=anchored(r"[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*"),
                max_length=255,
                description="Or from this dotted path in the JSON body, e.g. type or data.object.type.",
            ),
        ]
        | None
    ) = None
    default_event_type: EventType = "webhook"
    enabled: bool = True


class WebhookSourceUpdate(msgspec.Struct, forbid_unknown_fields=True):
    """Fields to change on a source; omitted fields keep their value. ``secrets`` replaces the list."""

    scheme: SigningScheme | None = None
    secrets: list[Annotated[str, text(min_length=8, max_length=500)]] | None = None
    description: Annotated[str, text(max_length=500, multiline=True)] | None = None
    namespace: Namespace | None = None
    event_type_header: Annotated[str, msgspec.Meta(pattern=anchored(r"[A-Za-z0-9-]{0,128}"))] | None = None
    event_type_path: Annotated[str, msgspec.Meta(pattern=anchored(r"([A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*)?"))] | None = (
        None
    )
    default_event_type: EventType | None = None
    enabled: bool | None = None


class WebhookSource(msgspec.Struct):
    """A webhook source as listed: its secrets are never shown, only how many there are."""

    name: str
    scheme: str
    secret_count: int
    description: str
    namespace: str
    event_type_header: str | None
    event_type_path: str | None
    default_event_type: str
    enabled: bool
    endpoint: str
    created_at: dt.datetime
    updated_at: dt.datetime


class StreamTicket(msgspec.Struct):
    """A short-lived credential for ``GET /hooks/stream?ticket=`` (browsers' EventSource sends no headers)."""

    ticket: str
    expires_in: int
