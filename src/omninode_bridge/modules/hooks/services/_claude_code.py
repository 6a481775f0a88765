"""Claude Code hooks as Claude Code sends them, and the strict parsing of every hook body.

Claude Code runs a command hook with the event's JSON on stdin (``session_id``, ``transcript_path``,
``cwd``, ``permission_mode``, ``hook_event_name`` and per event ``tool_name``/``tool_input``/
``tool_response``/``tool_use_id``, ``prompt``, ``source``, ``reason``, ...). It is stored whole (redacted)
in ``data``; ``hook_event_name`` becomes our event type so tool calls pair and sessions open and close.
"""

from __future__ import annotations

import datetime as dt
import re
import types
import uuid
from typing import Annotated, Any, Union, get_args, get_origin

import msgspec

from omninode_bridge.core.errors import ProblemError
from omninode_bridge.core.inputs import (
    MAX_JSON_DEPTH,
    MalformedBodyError,
    check_datetime_range,
    check_json_body,
    convert_strict,
    nests_deeper_than,
)
from omninode_bridge.modules.hooks import schemas
from omninode_bridge.modules.hooks.messages import MAX_EVENT_DATA_BYTES, AcceptedHook
from omninode_bridge.modules.hooks.redaction import Redactor

__all__ = [
    "CLAUDE_CODE_EVENT_TYPES",
    "CLAUDE_CODE_SOURCE",
    "claude_code_event_type",
    "claude_code_hook",
    "decode_batch",
    "decode_hook",
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
_hook_decoder = msgspec.json.Decoder(schemas.HookEventIn)
#: The depth of a batch event's ``data`` object: the batch object, its ``events`` array, the event, ``data``.
_BATCH_DATA_DEPTH = 4


def _loosened(struct: type[msgspec.Struct]) -> tuple[type[msgspec.Struct], tuple[tuple[str, Any], ...]]:
    """``struct`` with its constrained string fields as plain ``str``, and those fields with a list of their real
    type (to check many values in one call).

    msgspec checks a string's pattern by calling ``re`` for every value: five fields of a thousand events cost
    more than decoding the whole body. A batch repeats most values (source, event type, tool, session), so
    the batch decodes into the loose struct and each distinct value is checked once against the real type.
    """
    fields: list[tuple[Any, ...]] = []
    checked: list[tuple[str, Any]] = []
    for field in msgspec.structs.fields(struct):
        kind = field.type
        optional = get_origin(kind) in (Union, types.UnionType) and type(None) in get_args(kind)
        inner = next(arg for arg in get_args(kind) if arg is not type(None)) if optional else kind
        if get_origin(inner) is Annotated and get_args(inner)[0] is str:
            checked.append((field.name, list[kind]))  # type: ignore[valid-type]  # a type held in a variable
            kind = str | None if optional else str
        if field.default is not msgspec.NODEFAULT:
            fields.append((field.name, kind, field.default))
        elif field.default_factory is not msgspec.NODEFAULT:
            fields.append((field.name, kind, msgspec.field(default_factory=field.default_factory)))
        else:
            fields.append((field.name, kind))
    loose = msgspec.defstruct(f"Loose{struct.__name__}", fields, forbid_unknown_fields=True)
    return loose, tuple(checked)


_LooseHook, _CHECKED_FIELDS = _loosened(schemas.HookEventIn)
_LooseBatch = msgspec.defstruct(
    "LooseHookBatch",
    [("events", Annotated[list[_LooseHook], msgspec.Meta(min_length=1, max_length=1000)])],  # type: ignore[valid-type]
    forbid_unknown_fields=True,
)
_batch_decoder = msgspec.json.Decoder(_LooseBatch)


def _checked_events(events: list[Any]) -> list[schemas.HookEventIn] | None:
    """The loose events as :class:`schemas.HookEventIn`, or None when a string breaks its field's constraints."""
    for name, kinds in _CHECKED_FIELDS:
        try:
            msgspec.convert(list({getattr(event, name) for event in events}), kinds)
        except msgspec.ValidationError:
            return None
    # Same fields in the same order: positional construction (no validation, none needed any more).
    return [schemas.HookEventIn(*msgspec.structs.astuple(event)) for event in events]


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


def _typed(decoder: msgspec.json.Decoder[Any], body: bytes) -> Any:
    """``body`` decoded straight to the decoder's struct, or None when the checked path must decide.

    msgspec's typed decode applies the same strict rules as :func:`convert_strict` on the decoded JSON, in one
    pass and without the intermediate dicts. Anything it refuses, and any body with an escaped NUL (which the
    generic check reports by path), goes the generic way, which answers with the same errors as before.
    """
    if not body or b"\\u0000" in body:
        return None
    try:
        return decoder.decode(body)
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError, ValueError):
        return None


def decode_hook(body: bytes) -> schemas.HookEventIn | tuple[dict[str, Any], schemas.ClaudeCodeHookIn]:
    """Decode and validate a ``POST /hooks`` body: our format, or Claude Code's (it has ``hook_event_name``).

    Raises:
        MalformedBodyError: Not JSON, not UTF-8, or empty (400).
        InputError: A NUL, nesting deeper than the limit, or a timestamp out of range (422).
        ProblemError: 422 naming the offending field.
    """
    if b"hook_event_name" not in body and body.count(b"{") + body.count(b"[") <= MAX_JSON_DEPTH:
        hook = _typed(_hook_decoder, body)
        if hook is not None:
            _timestamp(hook, "timestamp")
            return hook  # type: ignore[no-any-return]  # the decoder's type
    value = check_json_body(body)
    if isinstance(value, dict) and "hook_event_name" in value:
        return parse_claude_code(value)
    return parse_hook(value)


def decode_batch(body: bytes) -> schemas.HookBatch:
    """Decode and validate a ``POST /hooks/batch`` body (fields named ``events[3].source``).

    Raises:
        MalformedBodyError: Not JSON, not UTF-8, or empty (400).
        InputError: A NUL, nesting deeper than the limit, or a timestamp out of range (422).
        ValidationException: A field of the wrong type, missing or unknown (422, naming it).
    """
    loose = _typed(_batch_decoder, body)
    events = _checked_events(loose.events) if loose is not None else None
    if events is not None:
        # Only ``data`` is free JSON: the depth check walks its containers, from the depth it sits at.
        nested = [
            (item, _BATCH_DATA_DEPTH + 1)
            for event in events
            for item in event.data.values()
            if isinstance(item, dict | list)
        ]
        if not nested or not nests_deeper_than(nested, MAX_JSON_DEPTH):
            for index, hook in enumerate(events):
                _timestamp(hook, f"events[{index}].timestamp")
            return schemas.HookBatch(events=events)
    value = check_json_body(body)
    if not body:
        raise MalformedBodyError("the body is empty: send a JSON document (Content-Type: application/json)")
    convert_strict(value, schemas.HookBatch)  # the request class's error format for a typed body, as before
    return parse_batch(value)


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
