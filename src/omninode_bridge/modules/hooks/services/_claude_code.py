"""Claude Code hooks as Claude Code sends them, and the strict parsing of every hook body.

Claude Code runs a command hook with the event's JSON on stdin (``session_id``, ``transcript_path``,
``cwd``, ``permission_mode``, ``hook_event_name`` and per event ``tool_name``/``tool_input``/
``tool_response``/``tool_use_id``, ``prompt``, ``source``, ``reason``, ...). It is stored whole (redacted)
in ``data``; ``hook_event_name`` becomes our event type so tool calls pair and sessions open and close.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from typing import Any

import msgspec

from omninode_bridge.core.errors import ProblemError
from omninode_bridge.core.inputs import MalformedBodyError, check_datetime_range
from omninode_bridge.modules.hooks import schemas
from omninode_bridge.modules.hooks.messages import MAX_EVENT_DATA_BYTES, AcceptedHook
from omninode_bridge.modules.hooks.redaction import Redactor

__all__ = [
    "CLAUDE_CODE_EVENT_TYPES",
    "CLAUDE_CODE_SOURCE",
    "claude_code_event_type",
    "claude_code_hook",
    "parse_batch",
    "parse_claude_code",
    "parse_hook",
]

#: The ``source`` of Claude Code hooks unless the request names another.
CLAUDE_CODE_SOURCE = "claude-code"
#: Claude Code's ``hook_event_name`` -> our event type. A failed tool call is a ``post_tool_use`` whose
#: outcome is an error; names not listed (added by later versions) become their snake_case form.
CLAUDE_CODE_EVENT_TYPES = {
    "PreToolUse": "pre_tool_use",
    "PostToolUse": "post_tool_use",
    "PostToolUseFailure": "post_tool_use",
    "SessionStart": "session_start",
    "SessionEnd": "session_end",
    "Stop": "stop",
    "SubagentStop": "subagent_stop",
    "UserPromptSubmit": "user_prompt_submit",
    "Notification": "notification",
    "PreCompact": "pre_compact",
}
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_size = msgspec.json.Encoder()
_NAMED_FIELD = re.compile(r"(?:missing required|unknown) field `([^`]+)`")


def claude_code_event_type(hook_event_name: str) -> str:
    """Our event type for a Claude Code ``hook_event_name`` (``SubagentStart`` -> ``subagent_start``)."""
    return CLAUDE_CODE_EVENT_TYPES.get(hook_event_name) or _CAMEL.sub("_", hook_event_name).lower()


def _invalid(exc: msgspec.ValidationError) -> ProblemError:
    message = str(exc)
    text, _, where = message.partition(" - at `")
    field = re.sub(r"\[(\d+)\]", r".\1", where.rstrip("`").removeprefix("$")).removeprefix(".") or None
    named = _NAMED_FIELD.search(text)  # a missing or unknown field is reported at its object
    if named is not None:
        field = f"{field}.{named.group(1)}" if field else named.group(1)
    detail = f"Invalid {field}: {text}" if field else f"Invalid request body: {text}"
    return ProblemError(422, detail, extra={"errors": [{"field": field, "source": "body", "message": text}]})


def _object(value: Any) -> dict[str, Any]:
    if value is None:
        raise MalformedBodyError("The body is empty: send a JSON object (Content-Type: application/json).")
    if not isinstance(value, dict):
        raise ProblemError(422, "The body must be a JSON object.", extra={"errors": [{"field": None}]})
    return value


def _timestamp(hook: schemas.HookEventIn, field: str) -> None:
    check_datetime_range(hook.timestamp, field)


def parse_hook(value: Any) -> schemas.HookEventIn:
    """Validate a decoded ``POST /hooks`` body strictly: no numbers for timestamps or strings for numbers.

    Raises:
        MalformedBodyError: The body is empty.
        ProblemError: 422 naming the offending field.
        InputError: A timestamp out of range.
    """
    try:
        hook = msgspec.convert(_object(value), schemas.HookEventIn, strict=True)
    except msgspec.ValidationError as exc:
        raise _invalid(exc) from None
    _timestamp(hook, "timestamp")
    return hook


def parse_batch(value: Any) -> schemas.HookBatch:
    """Validate a decoded ``POST /hooks/batch`` body strictly (fields named ``events.3.source``)."""
    try:
        batch = msgspec.convert(_object(value), schemas.HookBatch, strict=True)
    except msgspec.ValidationError as exc:
        raise _invalid(exc) from None
    for index, hook in enumerate(batch.events):
        _timestamp(hook, f"events[{index}].timestamp")
    return batch


def parse_claude_code(value: Any) -> tuple[dict[str, Any], schemas.ClaudeCodeHookIn]:
    """Validate a Claude Code hook body: its known fields strictly, any other field as it is.

    Returns:
        The whole payload and its parsed known fields.
    """
    payload = _object(value)
    try:
        return payload, msgspec.convert(payload, schemas.ClaudeCodeHookIn, strict=True)
    except msgspec.ValidationError as exc:
        raise _invalid(exc) from None


def claude_code_hook(
    payload: dict[str, Any],
    parsed: schemas.ClaudeCodeHookIn,
    *,
    redactor: Redactor,
    source: str,
    namespace: str,
    key_id: uuid.UUID | None,
    now: dt.datetime,
    body_length: int,
) -> AcceptedHook:
    """The hook a Claude Code event becomes.

    The session id is the correlation id, so a session's events share a Kafka key (one partition, in
    order) and the processor sees SessionStart before the tool calls and SessionEnd last.

    Args:
        payload: The whole event as sent (stored redacted in ``data``).
        parsed: Its validated known fields.
        redactor: The configured redactor.
        source: The hook's source (``claude-code`` unless overridden).
        namespace: Its namespace.
        key_id: The API key that posted it.
        now: Time of receipt (Claude Code sends no timestamp).
        body_length: Size of the request body: only a body that large can need its data left out of the event.
    """
    data, redacted = redactor.redact(payload)
    return AcceptedHook(
        event_id=uuid.uuid4(), kind="hook", source=source, namespace=namespace,
        event_type=claude_code_event_type(parsed.hook_event_name), correlation_id=parsed.session_id,
        occurred_at=now, data=data, redacted=redacted, session_id=parsed.session_id, tool_name=parsed.tool_name,
        tool_call_id=parsed.tool_use_id, key_id=key_id, received_at=now,
        data_truncated=body_length > MAX_EVENT_DATA_BYTES and len(_size.encode(data)) > MAX_EVENT_DATA_BYTES,
    )  # fmt: skip
