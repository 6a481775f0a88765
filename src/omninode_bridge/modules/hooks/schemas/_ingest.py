"""Bodies of hook ingestion: a hook, a Claude Code hook, a batch, and their answers."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated, Any, Literal

import msgspec

from omninode_bridge.core.inputs import AwareDatetime, Identifier, Namespace, Text
from omninode_bridge.modules.hooks.schemas._types import (
    CorrelationId,
    EventType,
    FreeText,
    HookEventName,
    Label,
    SourceName,
)


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


class ToolCallPair(msgspec.Struct, kw_only=True):
    """A tool call observed by another module (the registry's proxy): stored as a ``pre_tool_use`` at
    ``started_at`` and a ``post_tool_use`` at ``finished_at`` sharing ``tool_call_id``, so the processor pairs
    them and records the duration. Not an HTTP body: built in-process, validated by its producer."""

    source: str
    tool_name: str
    tool_call_id: str
    correlation_id: str
    started_at: dt.datetime
    finished_at: dt.datetime
    pre: dict[str, Any]
    post: dict[str, Any]
    session_id: str | None = None
    namespace: str = "default"
    key_id: uuid.UUID | None = None


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
