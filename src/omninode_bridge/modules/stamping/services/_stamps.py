"""Stamp requests, their input checks, and stamp lookups."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

import msgspec
from sqlalchemy import select

from omninode_bridge.core.db import UnitOfWork
from omninode_bridge.core.errors import ProblemError
from omninode_bridge.core.inputs import Namespace, has_control_characters
from omninode_bridge.core.paging import Filter, newest_first
from omninode_bridge.modules.stamping.models import StampRow
from omninode_bridge.modules.stamping.schemas import MAX_FILE_PATH, StampPage, StampRecord
from omninode_bridge.modules.stamping.services._hashing import StreamDigest

__all__ = ["StampLookups", "StampRequest", "check_file_path", "check_namespace", "invalid", "record_of"]


def invalid(field_name: str, message: str) -> ProblemError:
    return ProblemError(422, message, slug="validation-error", extra={"errors": [{"field": field_name,
                                                                                    "message": message}]})  # fmt: skip


def check_namespace(namespace: str) -> None:
    """Refuse a namespace that is not a :data:`~omninode_bridge.core.inputs.Namespace` (422)."""
    try:
        msgspec.convert(namespace, Namespace)
    except msgspec.ValidationError as exc:
        raise invalid("namespace", "namespace must be 1-255 letters, digits, '_', '.' or '-'") from exc


def check_file_path(file_path: str | None) -> None:
    """Refuse absolute paths, ``..`` segments, control characters and overlong paths (422)."""
    if file_path is None:
        return
    path = PurePosixPath(file_path.replace("\\", "/"))
    if (
        not file_path
        or len(file_path) > MAX_FILE_PATH
        or path.is_absolute()
        or ".." in path.parts
        or (len(file_path) > 1 and file_path[1] == ":")  # a Windows drive
        or has_control_characters(file_path)
    ):
        raise invalid("file_path", "file_path must be a relative path without '..' segments")


@dataclass(slots=True)
class StampRequest:
    """What to stamp: in-memory ``content`` (JSON requests) or a ``digest`` of a streamed upload.

    ``correlation_id`` keys the workflow's events.
    """

    namespace: str
    file_path: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    content: bytes | None = None
    digest: StreamDigest | None = None
    correlation_id: str = ""


def record_of(row: StampRow) -> StampRecord:
    """The API form of a stored stamp."""
    return StampRecord(
        stamp_id=row.id, file_hash=row.file_hash, namespace=row.namespace, content_type=row.content_type,
        size_bytes=row.size_bytes, key_id=row.key_id, stamp=row.stamp, workflow_id=row.workflow_id,
        created_at=row.created_at, file_path=row.file_path, metadata=row.details,
    )  # fmt: skip


class StampLookups:
    """Stamp lookups (no transaction of their own: they read in the caller's unit of work)."""

    @staticmethod
    async def by_hash(uow: UnitOfWork, file_hash: str, namespaces: frozenset[str] | None,
                      namespace: str | None) -> StampRow | None:  # fmt: skip
        """The newest stamp of ``file_hash`` in ``namespace`` (or any namespace the caller may see)."""
        query = select(StampRow).where(StampRow.file_hash == file_hash)
        if namespace is not None:
            query = query.where(StampRow.namespace == namespace)
        if namespaces is not None:
            query = query.where(StampRow.namespace.in_(namespaces))
        return await uow.session.scalar(query.order_by(StampRow.id.desc()).limit(1))

    @staticmethod
    async def by_id(uow: UnitOfWork, stamp_id: uuid.UUID) -> StampRow | None:
        """A stamp by id."""
        return await uow.session.get(StampRow, stamp_id)

    @staticmethod
    async def page(
        uow: UnitOfWork,
        *,
        namespaces: frozenset[str] | None,
        namespace: str | None = None,
        content_type: str | None = None,
        file_hash: str | None = None,
        created_after: dt.datetime | None = None,
        created_before: dt.datetime | None = None,
        cursor: uuid.UUID | None = None,
        limit: int = 100,
    ) -> StampPage:
        """Stamps newest first matching every filter given, after ``cursor`` (a stamp id)."""
        conditions: list[Filter] = [
            (namespace, lambda: StampRow.namespace == namespace),
            (namespaces, lambda: StampRow.namespace.in_(namespaces or ())),
            (content_type, lambda: StampRow.content_type == content_type),
            (file_hash, lambda: StampRow.file_hash == file_hash),
            (created_after, lambda: StampRow.created_at >= created_after),
            (created_before, lambda: StampRow.created_at < created_before),
        ]
        rows, next_cursor = await newest_first(uow.session, StampRow, limit=limit, cursor=cursor, filters=conditions)
        return StampPage(items=[record_of(r) for r in rows], next_cursor=next_cursor)
