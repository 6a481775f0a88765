"""Bodies of the webhook sources endpoints."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import msgspec

from omninode_bridge.core.inputs import Namespace, anchored, text
from omninode_bridge.modules.hooks.schemas._types import (
    DEFAULT_NAMESPACE,
    EventType,
    SigningScheme,
)


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
