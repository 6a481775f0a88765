"""Constants and field types shared by the hooks bodies."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from omninode_bridge.core.inputs import anchored, text

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
