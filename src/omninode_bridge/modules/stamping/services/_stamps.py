"""The stamping workflow's step handlers, and stamp lookups."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

import msgspec
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from uuid_utils.compat import uuid7

from omninode_bridge.core.db import UnitOfWork
from omninode_bridge.core.errors import ProblemError
from omninode_bridge.core.inputs import Namespace, has_control_characters
from omninode_bridge.core.paging import Filter, newest_first
from omninode_bridge.modules.orchestrator import StepHandler, WorkflowRun
from omninode_bridge.modules.stamping import events
from omninode_bridge.modules.stamping.models import STAMPS_TABLE, StampRow
from omninode_bridge.modules.stamping.schemas import MAX_FILE_PATH, StampPage, StampRecord
from omninode_bridge.modules.stamping.services._content_type import detect_content_type, is_textual, looks_like_text
from omninode_bridge.modules.stamping.services._hashing import HEAD_BYTES, HashPolicy, StreamDigest
from omninode_bridge.modules.stamping.services._stamp_format import (
    METADATA_VERSION,
    Keyring,
    comment_style,
    find_block,
    insert_block,
    render_block,
    without_block,
)

__all__ = ["StampInput", "StampingService", "check_file_path", "check_namespace", "record_of"]

_MAX_METADATA_BYTES = 64 * 1024


def _invalid(field_name: str, message: str) -> ProblemError:
    return ProblemError(422, message, slug="validation-error", extra={"errors": [{"field": field_name,
                                                                                    "message": message}]})  # fmt: skip


def check_namespace(namespace: str) -> None:
    """Refuse a namespace that is not a :data:`~omninode_bridge.core.inputs.Namespace` (422)."""
    try:
        msgspec.convert(namespace, Namespace)
    except msgspec.ValidationError as exc:
        raise _invalid("namespace", "namespace must be 1-255 letters, digits, '_', '.' or '-'") from exc


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
        raise _invalid("file_path", "file_path must be a relative path without '..' segments")


@dataclass(slots=True)
class StampInput:
    """What to stamp: in-memory ``content`` (JSON requests) or a ``digest`` of a streamed upload."""

    namespace: str
    file_path: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    content: bytes | None = None
    digest: StreamDigest | None = None


def record_of(row: StampRow) -> StampRecord:
    """The API form of a stored stamp."""
    return StampRecord(
        stamp_id=row.id, file_hash=row.file_hash, namespace=row.namespace, content_type=row.content_type,
        size_bytes=row.size_bytes, key_id=row.key_id, stamp=row.stamp, workflow_id=row.workflow_id,
        created_at=row.created_at, file_path=row.file_path, metadata=row.details,
    )  # fmt: skip


#: The stamp insert as one Core statement, compiled once: built per request through the ORM (``.values()``
#: on the mapped class) it made new bind parameters, a cache key and ORM bulk bookkeeping for every stamp,
#: about 10% of a ``/stamp`` request's CPU in py-spy.
_INSERT_STAMP = (
    pg_insert(STAMPS_TABLE)
    .on_conflict_do_nothing(constraint="uq_stamping_stamps_namespace_hash")
    .returning(STAMPS_TABLE.c.id)
)


class StampingService:
    """Stamps content through the orchestrator's workflow; looks stamps up.

    Args:
        keyring: Signs new stamps, verifies old ones.
        policy: Where hashing runs.
    """

    #: The orchestrator contract steps this service handles.
    STEP_NAMES = ("validate_input", "hash_generation", "stamp_creation", "event_publishing")

    def __init__(self, keyring: Keyring, policy: HashPolicy) -> None:
        self.keyring = keyring
        self.policy = policy

    @property
    def handlers(self) -> Mapping[str, StepHandler]:
        """Step handlers by the contract's step names (each is the method of that name)."""
        return {name: getattr(self, name) for name in self.STEP_NAMES}

    async def validate_input(self, run: WorkflowRun) -> dict[str, Any]:
        """Namespace, file path and metadata size; the same checks the controller ran before streaming."""
        item: StampInput = run.data["input"]
        check_namespace(item.namespace)
        check_file_path(item.file_path)
        if len(msgspec.json.encode(item.metadata)) > _MAX_METADATA_BYTES:
            raise _invalid("metadata", f"metadata must encode to at most {_MAX_METADATA_BYTES} bytes")
        run.data["namespace"] = item.namespace
        if item.file_path:
            run.data["file_path"] = item.file_path
        return {"mode": "stream" if item.digest is not None else "inline"}

    async def hash_generation(self, run: WorkflowRun) -> dict[str, Any]:
        """BLAKE3 of the content without any old stamp block, and its content type.

        A streamed upload was hashed block by block as it arrived; this step takes its digest.
        """
        item: StampInput = run.data["input"]
        if item.digest is not None:
            file_hash, size, head, body = (
                item.digest.file_hash,
                item.digest.size_bytes,
                item.digest.head,
                item.digest.body,
            )
        else:
            body = without_block(item.content or b"")
            file_hash, size, head = await self.policy.hash_bytes(body), len(body), body[:HEAD_BYTES]
        content_type = detect_content_type(head, item.file_path)
        run.data.update(file_hash=file_hash, size_bytes=size, content_type=content_type, body=body)
        run.emit(events.HASH_GENERATED, events.HashGenerated(run.workflow_id, file_hash, size, content_type,
                                                             item.namespace))  # fmt: skip
        return {"file_hash": file_hash, "size_bytes": size, "content_type": content_type}

    async def stamp_creation(self, run: WorkflowRun) -> dict[str, Any]:
        """Sign and store the stamp, or take the existing one for this content and namespace."""
        item: StampInput = run.data["input"]
        now = dt.datetime.now(dt.UTC)
        fields = self.keyring.sign({
            "metadata_version": METADATA_VERSION, "stamp_id": str(uuid7()), "hash_algorithm": "blake3",
            "file_hash": run.data["file_hash"], "namespace": item.namespace, "content_type": run.data["content_type"],
            "size_bytes": str(run.data["size_bytes"]), "created_at": now.isoformat(timespec="microseconds"),
        })  # fmt: skip
        stamp_id = uuid.UUID(fields["stamp_id"])
        inserted = await run.uow.session.scalar(_INSERT_STAMP, {
            "id": stamp_id, "namespace": item.namespace, "file_hash": fields["file_hash"],
            "content_type": fields["content_type"], "size_bytes": run.data["size_bytes"], "file_path": item.file_path,
            "metadata": item.metadata, "key_id": fields["key_id"], "signature": fields["signature"],
            "stamp": render_block(fields), "workflow_id": run.workflow_id, "created_at": now,
        })  # fmt: skip
        if inserted is None:
            row = await run.uow.session.scalar(
                select(StampRow).where(StampRow.namespace == item.namespace, StampRow.file_hash == fields["file_hash"])
            )
            assert row is not None  # the conflict that stopped the insert is this row
            existing = find_block(row.stamp.encode())
            fields = existing.fields if existing else fields
            run.data.update(existing=True, row=row)
        else:
            run.data.update(existing=False, row=None)
            run.emit(events.STAMP_CREATED, events.StampCreated(
                stamp_id=stamp_id, workflow_id=run.workflow_id, file_hash=fields["file_hash"],
                namespace=item.namespace, content_type=fields["content_type"], size_bytes=run.data["size_bytes"],
                file_path=item.file_path, key_id=fields["key_id"],
            ))  # fmt: skip
        run.data.update(stamp_id=fields["stamp_id"], fields=fields, created_at=fields["created_at"])
        run.data["stamped_content"] = self._stamped_content(run.data.get("body"), fields)
        return {"stamp_id": fields["stamp_id"], "existing": run.data["existing"]}

    async def event_publishing(self, run: WorkflowRun) -> dict[str, Any]:
        """Write the hash and stamp events to the outbox, in the request's transaction."""
        return {"events": await run.publish_emitted()}

    @staticmethod
    def _stamped_content(body: bytes | None, fields: dict[str, str]) -> str | None:
        """Text content with the block prepended as a comment; None for binary, JSON or too-large content."""
        if body is None or not is_textual(fields["content_type"]) or not looks_like_text(body[:HEAD_BYTES]):
            return None
        style = comment_style(fields["content_type"])
        if style is None:
            return None
        try:
            return insert_block(body, render_block(fields, style)).decode("utf-8")
        except UnicodeDecodeError:
            return None

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
