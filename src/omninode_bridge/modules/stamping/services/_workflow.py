"""The stamping workflow's steps: typed callables on :class:`StampContext`, one per contract step."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import msgspec
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from uuid_utils.compat import uuid7

from omninode_bridge.core.steps import Lead, RoutedService, Run, ServiceUnavailableError, Step, WorkflowContract
from omninode_bridge.modules.stamping import messages
from omninode_bridge.modules.stamping.models import STAMPS_TABLE, StampRow
from omninode_bridge.modules.stamping.services._content_type import detect_content_type, is_textual, looks_like_text
from omninode_bridge.modules.stamping.services._hashing import HEAD_BYTES, HashPolicy
from omninode_bridge.modules.stamping.services._stamp_format import (
    METADATA_VERSION,
    Keyring,
    comment_style,
    find_block,
    insert_block,
    render_block,
    without_block,
)
from omninode_bridge.modules.stamping.services._stamps import StampRequest, check_file_path, check_namespace, invalid

__all__ = ["STEP_NAMES", "StampContext", "StampSteps", "run_result"]

_MAX_METADATA_BYTES = 64 * 1024

#: The contract steps stamping implements itself; ``routing`` steps call the contract's routed services.
STEP_NAMES = ("validate_input", "hash_generation", "stamp_creation", "event_publishing")

#: The stamp insert as one Core statement, compiled once: built per request through the ORM (``.values()``
#: on the mapped class) it made new bind parameters, a cache key and ORM bulk bookkeeping for every stamp,
#: about 10% of a ``/stamp`` request's CPU in py-spy.
_INSERT_STAMP = (
    pg_insert(STAMPS_TABLE)
    .on_conflict_do_nothing(constraint="uq_stamping_stamps_namespace_hash")
    .returning(STAMPS_TABLE.c.id)
)


#: The same insert as the lead of the run's one statement (:meth:`Run.write_with_run`): the stamp, its run record
#: and its events in one round trip. Nothing of the run is written when the content is already stamped.
_INSERT_STAMP_LEAD = """
INSERT INTO stamping_stamps (id, namespace, file_hash, content_type, size_bytes, file_path, metadata, key_id,
                             signature, stamp, workflow_id, created_at)
VALUES (CAST(:stamp_id AS uuid), CAST(:stamp_namespace AS text), CAST(:stamp_file_hash AS text),
        CAST(:stamp_content_type AS text), CAST(:stamp_size_bytes AS bigint), CAST(:stamp_file_path AS text),
        CAST(:stamp_metadata AS jsonb), CAST(:stamp_key_id AS text), CAST(:stamp_signature AS text),
        CAST(:stamp_block AS text), CAST(:stamp_workflow_id AS uuid), CAST(:stamp_created_at AS timestamptz))
ON CONFLICT ON CONSTRAINT uq_stamping_stamps_namespace_hash DO NOTHING
RETURNING id
"""
_json = msgspec.json.Encoder()


@dataclass(slots=True)
class StampContext:
    """One stamping run: the request, then what each step found.

    Attributes:
        request: What to stamp.
        answers: Routed services' answers, by step name.
        file_hash: BLAKE3 of the content without any old block (hash_generation).
        size_bytes: Its size.
        content_type: Its detected MIME type.
        body: The content without its old block, when kept (inline or small enough).
        fields: The signed stamp fields, new or the existing stamp's (stamp_creation).
        existing: Whether the content was stamped before in this namespace.
        row: The existing stamp's row, when ``existing``.
        stamped_content: Text content with the block inserted, if it can carry one.
        deferred: Whether stamp_creation defers its insert to the run's one statement (assuming new
            content: the run is not written if it is not); False looks the existing stamp up instead.
    """

    request: StampRequest
    answers: dict[str, dict[str, Any]] = field(default_factory=dict)
    file_hash: str = ""
    size_bytes: int = 0
    content_type: str = ""
    body: bytes | None = None
    fields: dict[str, str] = field(default_factory=dict)
    existing: bool = False
    row: StampRow | None = None
    stamped_content: str | None = None
    deferred: bool = True

    def scalars(self) -> dict[str, str | int]:
        """What a routed service is told about the content so far (never the content itself)."""
        known: dict[str, str | int] = {"namespace": self.request.namespace}
        if self.request.file_path:
            known["file_path"] = self.request.file_path
        if self.file_hash:
            known.update(file_hash=self.file_hash, size_bytes=self.size_bytes, content_type=self.content_type)
        return known


def run_result(context: StampContext) -> dict[str, Any]:
    """What a completed run records (and sends in ``WORKFLOW_COMPLETED``)."""
    return {"file_hash": context.file_hash, "existing": context.existing, "stamp_id": context.fields["stamp_id"]}


class StampSteps:
    """The step callables of the stamping contract.

    Args:
        keyring: Signs new stamps.
        policy: Where hashing runs.
        services: Routed services by name (for the contract's ``routing`` steps).
    """

    def __init__(self, keyring: Keyring, policy: HashPolicy, services: Mapping[str, RoutedService]) -> None:
        self.keyring = keyring
        self.policy = policy
        self.services = dict(services)

    def for_contract(self, contract: WorkflowContract) -> dict[str, Step[StampContext]]:
        """A step callable per contract step: stamping's own, and a routed call per ``routing`` step."""
        steps: dict[str, Step[StampContext]] = {
            "validate_input": self.validate_input, "hash_generation": self.hash_generation,
            "stamp_creation": self.stamp_creation, "event_publishing": self.event_publishing,
        }  # fmt: skip
        for spec in contract.workflow_coordination.steps:
            if spec.type == "routing" and spec.service in self.services:
                steps[spec.name] = self._routed(spec.name, self.services[spec.service])
        return steps

    @staticmethod
    def _routed(name: str, service: RoutedService) -> Step[StampContext]:
        async def routed(context: StampContext, run: Run) -> dict[str, Any]:
            if not service.configured:
                raise ServiceUnavailableError(f"{service.spec.name} is not configured")
            announce = {"workflow_id": str(run.workflow_id), "service": service.spec.name}
            run.emit("INTELLIGENCE_REQUESTED", announce)
            answer = await service.call({"workflow_id": str(run.workflow_id), "namespace": run.namespace,
                                         **context.scalars()})  # fmt: skip
            context.answers[name] = answer
            run.emit("INTELLIGENCE_RECEIVED", announce)
            return {"service": service.spec.name, "keys": sorted(answer)}

        return routed

    @staticmethod
    async def validate_input(context: StampContext, run: Run) -> dict[str, Any]:
        """Namespace, file path and metadata size; the same checks the controller ran before streaming."""
        request = context.request
        check_namespace(request.namespace)
        check_file_path(request.file_path)
        if len(msgspec.json.encode(request.metadata)) > _MAX_METADATA_BYTES:
            raise invalid("metadata", f"metadata must encode to at most {_MAX_METADATA_BYTES} bytes")
        return {"mode": "stream" if request.digest is not None else "inline"}

    async def hash_generation(self, context: StampContext, run: Run) -> dict[str, Any]:
        """BLAKE3 of the content without any old stamp block, and its content type.

        A streamed upload was hashed block by block as it arrived; this step takes its digest.
        """
        request = context.request
        if request.digest is not None:
            digest = request.digest
            file_hash, size, head, body = digest.file_hash, digest.size_bytes, digest.head, digest.body
        else:
            body = without_block(request.content or b"")
            file_hash, size, head = await self.policy.hash_bytes(body), len(body), body[:HEAD_BYTES]
        content_type = detect_content_type(head, request.file_path)
        context.file_hash, context.size_bytes, context.content_type, context.body = file_hash, size, content_type, body
        run.emit(messages.HASH_GENERATED, messages.HashGenerated(run.workflow_id, file_hash, size, content_type,
                                                                 request.namespace))  # fmt: skip
        return {"file_hash": file_hash, "size_bytes": size, "content_type": content_type}

    async def stamp_creation(self, context: StampContext, run: Run) -> dict[str, Any]:
        """Sign and store the stamp, or take the existing one for this content and namespace."""
        request = context.request
        now = dt.datetime.now(dt.UTC)
        fields = self.keyring.sign({
            "metadata_version": METADATA_VERSION, "stamp_id": str(uuid7()), "hash_algorithm": "blake3",
            "file_hash": context.file_hash, "namespace": request.namespace, "content_type": context.content_type,
            "size_bytes": str(context.size_bytes), "created_at": now.isoformat(timespec="microseconds"),
        })  # fmt: skip
        stamp_id = uuid.UUID(fields["stamp_id"])
        if context.deferred:
            run.write_with_run(Lead(_INSERT_STAMP_LEAD, {
                "stamp_id": stamp_id, "stamp_namespace": request.namespace, "stamp_file_hash": fields["file_hash"],
                "stamp_content_type": fields["content_type"], "stamp_size_bytes": context.size_bytes,
                "stamp_file_path": request.file_path, "stamp_metadata": _json.encode(request.metadata).decode(),
                "stamp_key_id": fields["key_id"], "stamp_signature": fields["signature"],
                "stamp_block": render_block(fields), "stamp_workflow_id": run.workflow_id, "stamp_created_at": now,
            }))  # fmt: skip
            self._created(context, run, fields, stamp_id)
            return {"stamp_id": fields["stamp_id"], "existing": False}
        inserted = await run.uow.session.scalar(_INSERT_STAMP, {
            "id": stamp_id, "namespace": request.namespace, "file_hash": fields["file_hash"],
            "content_type": fields["content_type"], "size_bytes": context.size_bytes, "file_path": request.file_path,
            "metadata": request.metadata, "key_id": fields["key_id"], "signature": fields["signature"],
            "stamp": render_block(fields), "workflow_id": run.workflow_id, "created_at": now,
        })  # fmt: skip
        if inserted is None:
            row = await run.uow.session.scalar(
                select(StampRow).where(StampRow.namespace == request.namespace,
                                       StampRow.file_hash == fields["file_hash"])
            )  # fmt: skip
            assert row is not None  # the conflict that stopped the insert is this row
            existing = find_block(row.stamp.encode())
            fields = existing.fields if existing else fields
            context.existing, context.row = True, row
        else:
            self._created(context, run, fields, stamp_id)
            return {"stamp_id": fields["stamp_id"], "existing": False}
        context.fields = fields
        context.stamped_content = self._stamped_content(context.body, fields)
        return {"stamp_id": fields["stamp_id"], "existing": True}

    def _created(self, context: StampContext, run: Run, fields: dict[str, str], stamp_id: uuid.UUID) -> None:
        """A new stamp: its event, its fields and the stamped content."""
        request = context.request
        context.existing, context.row, context.fields = False, None, fields
        run.emit(messages.STAMP_CREATED, messages.StampCreated(
            stamp_id=stamp_id, workflow_id=run.workflow_id, file_hash=fields["file_hash"],
            namespace=request.namespace, content_type=fields["content_type"], size_bytes=context.size_bytes,
            file_path=request.file_path, key_id=fields["key_id"],
        ))  # fmt: skip
        context.stamped_content = self._stamped_content(context.body, fields)

    @staticmethod
    async def event_publishing(context: StampContext, run: Run) -> dict[str, Any]:
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
