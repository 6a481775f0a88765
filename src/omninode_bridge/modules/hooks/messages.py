"""What the hooks module publishes: the hook topic, the ``HookEventReceived`` payload and envelope, and the
record every accepted hook becomes."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass, field
from typing import Any, Literal, cast

import blake3
import msgspec

from omninode_bridge.core.events import EnvelopeHead, OnexEnvelopeV1, new_envelope
from omninode_bridge.modules.hooks.schemas import DEFAULT_NAMESPACE

__all__ = [
    "ENVELOPE_SOURCE",
    "EVENT_TYPE",
    "HOOK_TOPIC",
    "MAX_EVENT_DATA_BYTES",
    "AcceptedHook",
    "HookEventReceived",
    "encoded_envelope_of",
    "envelope_of",
]

HOOK_TOPIC = "omninode_bridge_hook_events_v1"
EVENT_TYPE = "HookEventReceived"
ENVELOPE_SOURCE = "omninode-bridge.hooks"
#: Data larger than this (encoded) stays in the database: the event says ``data_truncated`` instead, so a
#: record never exceeds Kafka's default 1 MB message size and live viewers are not flooded.
MAX_EVENT_DATA_BYTES = 256 * 1024


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


@dataclass(slots=True)
class AcceptedHook:
    """One hook on its way into ``hook_events``, the outbox and the live stream (``data`` is redacted)."""

    event_id: uuid.UUID
    kind: str
    source: str
    event_type: str
    correlation_id: str
    occurred_at: dt.datetime
    data: dict[str, Any]
    redacted: bool
    session_id: str | None = None
    tool_name: str | None = None
    tool_call_id: str | None = None
    body_hash: str | None = None
    raw_body: bytes | None = None
    content_type: str | None = None
    batch_id: uuid.UUID | None = None
    key_id: uuid.UUID | None = None
    data_truncated: bool = False
    received_at: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))
    namespace: str = DEFAULT_NAMESPACE
    #: ``data`` as canonical JSON (sorted keys), encoded once by :meth:`encoded_data` and reused by the
    #: ``hook_events`` row, the event's payload (and its hash) and the live entry.
    data_json: bytes = b""

    def encoded_data(self) -> bytes:
        """``data`` as canonical JSON, encoded on first use (its length is the data's encoded size)."""
        if not self.data_json:
            self.data_json = _canonical.encode(self.data)
        return self.data_json

    def row(self) -> dict[str, Any]:
        """Column values of its ``hook_events`` row."""
        return {
            "event_id": self.event_id, "kind": self.kind, "source": self.source, "event_type": self.event_type,
            "session_id": self.session_id, "correlation_id": self.correlation_id, "tool_name": self.tool_name,
            "tool_call_id": self.tool_call_id, "occurred_at": self.occurred_at, "received_at": self.received_at,
            "data": self.data, "body_hash": self.body_hash, "raw_body": self.raw_body,
            "content_type": self.content_type, "redacted": self.redacted, "batch_id": self.batch_id,
            "key_id": self.key_id, "namespace": self.namespace,
        }  # fmt: skip

    def payload(self, *, replay: bool = False) -> HookEventReceived:
        """The event's payload."""
        return HookEventReceived(
            kind=self.kind,  # type: ignore[arg-type]  # "hook" or "webhook": the services set no other
            source=self.source,
            namespace=self.namespace,
            event_type=self.event_type,
            session_id=self.session_id,
            correlation_id=self.correlation_id,
            tool_name=self.tool_name,
            tool_call_id=self.tool_call_id,
            occurred_at=self.occurred_at,
            data=None if self.data_truncated else self.data,
            data_truncated=self.data_truncated,
            body_hash=self.body_hash,
            replay=replay,
        )

    def canonical_payload(self, *, replay: bool = False) -> bytes:
        """The event's payload as canonical JSON (what ``payload_hash`` hashes), built without a dict.

        The payload struct is encoded with sorted keys and ``data`` goes in as its canonical bytes, so the result
        is exactly ``canonical_payload(msgspec.to_builtins(self.payload()))``.
        """
        payload = self.payload(replay=replay)
        if not self.data_truncated:
            # A Raw is written as it is: data encoded once serves the row, the payload and the live entry.
            payload.data = cast("dict[str, Any]", msgspec.Raw(self.encoded_data()))
        return _canonical.encode(payload)

    def live(self) -> bytes:
        """The JSON a live viewer receives."""
        return _live_encoder.encode(
            {
                "event_id": self.event_id, "kind": self.kind, "source": self.source, "namespace": self.namespace,
                "event_type": self.event_type, "session_id": self.session_id, "correlation_id": self.correlation_id,
                "tool_name": self.tool_name, "tool_call_id": self.tool_call_id, "occurred_at": self.occurred_at,
                "received_at": self.received_at,
                "data": None if self.data_truncated else msgspec.Raw(self.encoded_data()),
                "data_truncated": self.data_truncated,
            }
        )  # fmt: skip


_live_encoder = msgspec.json.Encoder()
_canonical = msgspec.json.Encoder(order="sorted")


def envelope_of(hook: AcceptedHook, *, replay: bool = False) -> OnexEnvelopeV1:
    """The ``HookEventReceived`` envelope of a hook: its event id, keyed by its correlation id."""
    return new_envelope(
        event_type=EVENT_TYPE,
        payload=msgspec.to_builtins(hook.payload(replay=replay)),
        correlation_id=hook.correlation_id,
        session_id=hook.session_id,
        source=ENVELOPE_SOURCE,
        event_id=hook.event_id,
        timestamp=hook.received_at,
    )


def encoded_envelope_of(hook: AcceptedHook) -> EnvelopeHead:
    """The ``HookEventReceived`` envelope of a hook with its payload already encoded (canonical JSON): what
    :func:`envelope_of` describes, for the outbox to stage as it is (no payload dict, one encode, one hash)."""
    payload = hook.canonical_payload()
    return EnvelopeHead(
        event_id=hook.event_id, correlation_id=hook.correlation_id, session_id=hook.session_id, event_type=EVENT_TYPE,
        source=ENVELOPE_SOURCE, timestamp=hook.received_at, payload=msgspec.Raw(payload),
        payload_hash=blake3.blake3(payload).hexdigest(),
    )  # fmt: skip
