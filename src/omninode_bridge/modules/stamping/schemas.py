"""Stamping requests and responses (field names as in seed 001, so its clients work unchanged)."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated, Any, Literal

import msgspec

from omninode_bridge.core.inputs import MultilineText, Namespace, anchored, text

__all__ = [
    "ContentType",
    "FileHash",
    "FilePath",
    "HashRequest",
    "HashResponse",
    "Namespace",
    "StampCreate",
    "StampPage",
    "StampRecord",
    "StampResponse",
    "ValidationCheck",
    "ValidationRequest",
    "ValidationResponse",
]

MAX_FILE_PATH = 4096

#: A BLAKE3 content hash as 64 hex digits (upper case is accepted and lowered).
FileHash = Annotated[
    str, msgspec.Meta(pattern=anchored("[0-9a-fA-F]{64}"), min_length=64, max_length=64, description="64 hex digits")
]
#: A relative file path (checked further by ``check_file_path``).
FilePath = Annotated[
    str, text(min_length=1, max_length=MAX_FILE_PATH, description="Relative path; sets the content type.")
]
#: A MIME content type as stored on stamps.
ContentType = Annotated[str, text(min_length=1, max_length=255, description="MIME type, e.g. text/x-python")]


class HashRequest(msgspec.Struct, forbid_unknown_fields=True):
    """JSON form of ``POST /hash`` (any other content type is hashed as raw bytes)."""

    content: str


class HashResponse(msgspec.Struct):
    file_hash: str
    size_bytes: int
    algorithm: Literal["blake3"]
    processing_time_ms: float


class StampCreate(msgspec.Struct, forbid_unknown_fields=True):
    """JSON form of ``POST /stamp``; raw uploads pass ``namespace`` and ``file_path`` as query parameters."""

    content: Annotated[str, msgspec.Meta(description="The text to stamp (UTF-8).")]
    namespace: Namespace
    file_path: FilePath | None = None
    metadata: Annotated[dict[str, Any], msgspec.Meta(description="Free metadata kept with the stamp.")] = {}


class StampResponse(msgspec.Struct):
    """The stamp made (201) or the existing one for this content and namespace (200)."""

    stamp_id: uuid.UUID
    file_hash: str
    stamped_content: str | None
    stamp: str
    namespace: str
    content_type: str
    size_bytes: int
    metadata_version: str
    processing_time_ms: float
    workflow_state: str
    workflow_id: uuid.UUID
    created: bool
    intelligence: Literal["used", "degraded"]
    created_at: dt.datetime
    file_path: str | None = None
    metadata: dict[str, Any] = {}


class ValidationRequest(msgspec.Struct, forbid_unknown_fields=True):
    """``content`` with its stamp block inside, or ``content`` plus a detached ``stamp``.

    ``namespace``, if given, must be the stamp's namespace. Raw uploads pass ``stamp_id`` instead, as a
    query parameter, and are checked against the stored stamp.
    """

    content: str
    stamp: MultilineText | None = None
    namespace: Namespace | None = None


class ValidationCheck(msgspec.Struct):
    name: Literal["format", "hash", "signature", "namespace", "registered"]
    passed: bool
    detail: str | None = None


class ValidationResponse(msgspec.Struct):
    valid: bool
    checks: list[ValidationCheck]
    stamp_id: str | None = None
    file_hash: str | None = None
    namespace: str | None = None
    processing_time_ms: float = 0.0


class StampRecord(msgspec.Struct):
    """A stored stamp."""

    stamp_id: uuid.UUID
    file_hash: str
    namespace: str
    content_type: str
    size_bytes: int
    key_id: str
    stamp: str
    workflow_id: uuid.UUID
    created_at: dt.datetime
    metadata_version: str = "0.1"
    file_path: str | None = None
    metadata: dict[str, Any] = {}


class StampPage(msgspec.Struct):
    """Stamps newest first; pass ``next_cursor`` as ``cursor`` for the next page."""

    items: list[StampRecord]
    next_cursor: str | None
