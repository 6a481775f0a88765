"""Payloads of the events the stamping workflow publishes (on its contract's topic).

``STAMP_CREATED`` is what the reducer aggregates: it imports :class:`StampCreated` from stamping's public
interface, so the payload is declared here only.
"""

from __future__ import annotations

import uuid

import msgspec

__all__ = ["HASH_GENERATED", "STAMP_CREATED", "HashGenerated", "StampCreated"]

HASH_GENERATED = "HASH_GENERATED"
STAMP_CREATED = "STAMP_CREATED"


class HashGenerated(msgspec.Struct):
    workflow_id: uuid.UUID
    file_hash: str
    size_bytes: int
    content_type: str
    namespace: str


class StampCreated(msgspec.Struct, kw_only=True):
    """A new stamp (not sent when a request returns an existing one)."""

    stamp_id: uuid.UUID
    workflow_id: uuid.UUID
    file_hash: str
    namespace: str
    content_type: str
    size_bytes: int
    key_id: str
    file_path: str | None = None
