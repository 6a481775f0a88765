"""Stamping endpoints: ``/hash``, ``/stamp``, ``/validate``, ``/stamp/{file_hash}`` and ``/stamps``."""

from __future__ import annotations

import datetime as dt
import time
import uuid
from typing import Annotated, Any

from litestar import Controller, Request, Response, get, post
from litestar.di import NamedDependency
from litestar.exceptions import HTTPException
from litestar.params import QueryParameter

from omninode_bridge.core.db import UnitOfWork
from omninode_bridge.core.errors import ProblemError, correlation_id_of
from omninode_bridge.core.inputs import AwareDatetime, Namespace, param
from omninode_bridge.core.openapi import documented, error_responses
from omninode_bridge.core.paging import UuidCursorQuery, uuid_cursor
from omninode_bridge.modules.orchestrator import WorkflowFailedError
from omninode_bridge.modules.stamping.deps import is_json, read_json
from omninode_bridge.modules.stamping.schemas import (
    ContentType,
    FileHash,
    FilePath,
    HashRequest,
    HashResponse,
    StampCreate,
    StampPage,
    StampRecord,
    StampResponse,
    ValidationRequest,
    ValidationResponse,
)
from omninode_bridge.modules.stamping.services import (
    StampingService,
    StampInput,
    check_file_path,
    check_namespace,
    check_stamp,
    find_block,
    hash_stream,
    parse_detached,
    record_of,
    render_block,
    without_block,
)
from omninode_bridge.modules.stamping.state import StampingState
from omninode_bridge.platform import API_KEY_SECURITY, AUTH_RESPONSES, principal_of, require_namespace, require_scope

__all__ = ["StampingController"]

_RAW_NOTE = (
    "Send JSON (`application/json`) or the raw bytes with any other content type; raw bodies are hashed as "
    "they stream in, so their size is limited only by OMNINODE_STAMP_MAX_UPLOAD_BYTES."
)
_NAMESPACE_QUERY = param(Namespace, description="Namespace (raw uploads)")


_UPLOAD_RESPONSES = error_responses(body=True)
_STAMP_RESPONSES = error_responses(
    {200: documented(StampResponse, "The content was stamped before: that stamp")},
    body=True,
)
_VALIDATE_RESPONSES = error_responses({404: "Raw uploads: no stamp with this stamp_id"}, body=True)


def _elapsed_ms(began: float) -> float:
    return round((time.perf_counter() - began) * 1000, 3)


class StampingController(Controller):
    """BLAKE3 hashing and O.N.E. v0.1 stamps (scope ``stamping``; keys may be limited to namespaces)."""

    tags = ["stamping"]
    guards = [require_scope("stamping")]
    security = API_KEY_SECURITY

    @post("/hash", operation_id="hashContent", summary="BLAKE3 hash of a body", status_code=200,
          request_max_body_size=None, responses=_UPLOAD_RESPONSES, description=_RAW_NOTE)  # fmt: skip
    async def hash_content(
        self, request: Request[Any, Any, Any], stamping_state: NamedDependency[StampingState]
    ) -> HashResponse:
        """Hash JSON ``{"content": str}`` (its UTF-8 bytes) or the raw body; no stamp is stored."""
        began = time.perf_counter()
        settings = stamping_state.settings
        policy = stamping_state.service.policy
        if is_json(request):
            body = await read_json(request, HashRequest, stamping_state.max_json_bytes)
            data = body.content.encode()
            file_hash, size = await policy.hash_bytes(data), len(data)
        else:
            declared = request.headers.get("content-length", "")
            if declared.isdigit() and int(declared) <= policy.inline_max_bytes:
                # Small bodies in one piece: cheaper than the streaming path, same result.
                data = await request.body()
                file_hash, size = await policy.hash_bytes(data), len(data)
            else:
                digest = await hash_stream(request.stream(), max_bytes=settings.max_upload_bytes, policy=policy)
                file_hash, size = digest.file_hash, digest.size_bytes
        return HashResponse(file_hash=file_hash, size_bytes=size, algorithm="blake3",
                            processing_time_ms=_elapsed_ms(began))  # fmt: skip

    @post("/stamp", operation_id="createStamp", summary="Stamp content (idempotent per namespace)",
          request_max_body_size=None, description=_RAW_NOTE,
          responses=_STAMP_RESPONSES, status_code=201)  # fmt: skip
    async def create_stamp(
        self,
        request: Request[Any, Any, Any],
        stamping_state: NamedDependency[StampingState],
        uow: NamedDependency[UnitOfWork],
        stamping: NamedDependency[StampingService],
        namespace: Annotated[str | None, _NAMESPACE_QUERY] = None,
        file_path: Annotated[str | None, param(FilePath, description="Relative path (raw uploads)")] = None,
    ) -> Response[StampResponse]:
        """Hash, sign and store a stamp through the orchestrator's workflow; 201 when new, 200 when it existed.

        Text content comes back as ``stamped_content`` with the block prepended as a comment (an older block
        is replaced, never nested); binary content gets a detached ``stamp``.
        """
        began = time.perf_counter()
        settings = stamping_state.settings
        if is_json(request):
            body = await read_json(request, StampCreate, stamping_state.max_json_bytes)
            item = StampInput(body.namespace, body.file_path, body.metadata, content=body.content.encode())
            await require_namespace(request, item.namespace)
            check_file_path(item.file_path)
        else:
            if namespace is None:
                raise ProblemError(422, "Raw uploads need the namespace query parameter.", slug="validation-error",
                                   extra={"errors": [{"field": "namespace", "source": "query"}]})  # fmt: skip
            check_namespace(namespace)
            check_file_path(file_path)
            await require_namespace(request, namespace)  # before reading a possibly huge body
            digest = await hash_stream(
                request.stream(), max_bytes=settings.max_upload_bytes,
                keep_max_bytes=settings.stamped_content_max_bytes, strip_head=without_block,
                policy=stamping.policy,
            )  # fmt: skip
            item = StampInput(namespace, file_path, digest=digest)

        try:
            result = await stamping_state.orchestrator.get().run(
                uow, stamping.handlers, workflow_type="stamping", correlation_id=correlation_id_of(request) or "",
                namespace=item.namespace, data={"input": item},
            )  # fmt: skip
        except WorkflowFailedError as exc:
            if isinstance(exc.cause, HTTPException) and exc.cause.status_code < 500:
                raise exc.cause from exc  # bad input found by validate_input
            raise ProblemError(
                500, f"The stamping workflow failed at step {exc.step}: {exc.error}", slug="workflow-failed",
                extra={"workflow_id": str(exc.workflow_id), "failed_step": exc.step},
            ) from exc  # fmt: skip
        await uow.commit()
        data = result.data
        fields = data["fields"]
        response = StampResponse(
            stamp_id=uuid.UUID(fields["stamp_id"]), file_hash=fields["file_hash"],
            stamped_content=data["stamped_content"], stamp=data["row"].stamp if data["row"] else render_block(fields),
            namespace=item.namespace, content_type=fields["content_type"], size_bytes=int(fields["size_bytes"]),
            metadata_version=fields["metadata_version"], processing_time_ms=_elapsed_ms(began),
            workflow_state=result.state, workflow_id=result.workflow_id, created=not data["existing"],
            intelligence="degraded" if result.degraded else "used",
            created_at=dt.datetime.fromisoformat(fields["created_at"]),
            file_path=data["row"].file_path if data["row"] else item.file_path,
            metadata=data["row"].details if data["row"] else item.metadata,
        )  # fmt: skip
        return Response(response, status_code=200 if data["existing"] else 201)

    @post("/validate", operation_id="validateStamp", summary="Check content against its stamp", status_code=200,
          request_max_body_size=None, responses=_VALIDATE_RESPONSES)  # fmt: skip
    async def validate(
        self,
        request: Request[Any, Any, Any],
        stamping_state: NamedDependency[StampingState],
        uow: NamedDependency[UnitOfWork],
        stamping: NamedDependency[StampingService],
        stamp_id: Annotated[uuid.UUID | None, QueryParameter(description="Raw uploads: the stamp to check")] = None,
        namespace: Annotated[str | None, _NAMESPACE_QUERY] = None,
    ) -> ValidationResponse:
        """Format, hash, signature and namespace checks; ``valid`` only if all pass.

        JSON: ``content`` with its block inside, or ``content`` and a detached ``stamp``. Raw body: the
        content, checked against the stored stamp ``stamp_id``.
        """
        began = time.perf_counter()
        settings = stamping_state.settings
        if is_json(request):
            body = await read_json(request, ValidationRequest, stamping_state.max_json_bytes)
            content = body.content.encode()
            expected = body.namespace
            if body.stamp is not None:
                fields, stripped = parse_detached(body.stamp), content
            else:
                found = find_block(content)
                fields, stripped = (found.fields, found.strip(content)) if found else (None, content)
            file_hash, size = await stamping.policy.hash_bytes(stripped), len(stripped)
        else:
            if stamp_id is None:
                raise ProblemError(422, "Raw uploads need the stamp_id query parameter.", slug="validation-error",
                                   extra={"errors": [{"field": "stamp_id", "source": "query"}]})  # fmt: skip
            row = await stamping.by_id(uow, stamp_id)
            if row is None:
                raise ProblemError(404, f"No stamp {stamp_id}.", slug="not-found")
            await require_namespace(request, row.namespace)
            digest = await hash_stream(request.stream(), max_bytes=settings.max_upload_bytes,
                                       strip_head=without_block, policy=stamping.policy)  # fmt: skip
            found = find_block(row.stamp.encode())
            fields, file_hash, size, expected = (
                (found.fields if found else None),
                digest.file_hash,
                digest.size_bytes,
                namespace,
            )
        result = check_stamp(stamping.keyring, fields, file_hash=file_hash, size_bytes=size,
                             expected_namespace=expected)  # fmt: skip
        if result.namespace is not None and not principal_of(request).may_use_namespace(result.namespace):
            await require_namespace(request, result.namespace)
        result.processing_time_ms = _elapsed_ms(began)
        return result

    @get("/stamp/{file_hash:str}", operation_id="getStampByHash", summary="The stamp of a content hash",
         responses=error_responses({404: "No stamp of this hash (in this namespace)"}))  # fmt: skip
    async def get_stamp(
        self,
        request: Request[Any, Any, Any],
        uow: NamedDependency[UnitOfWork],
        stamping: NamedDependency[StampingService],
        file_hash: Annotated[str, param(FileHash, path=True)],
        namespace: Annotated[str | None, param(Namespace)] = None,
    ) -> StampRecord:
        """The newest stamp of ``file_hash`` (in ``namespace`` if given); 404 if there is none."""
        normalized = file_hash.lower()
        if namespace is not None:
            await require_namespace(request, namespace)
        row = await stamping.by_hash(uow, normalized, principal_of(request).namespaces, namespace)
        if row is None:
            where = f" in namespace {namespace}" if namespace else ""
            raise ProblemError(404, f"No stamp for {normalized}{where}.", slug="not-found")
        return record_of(row)

    @get("/stamps", operation_id="listStamps", summary="Stamps, newest first", responses=AUTH_RESPONSES)
    async def list_stamps(
        self,
        request: Request[Any, Any, Any],
        uow: NamedDependency[UnitOfWork],
        stamping: NamedDependency[StampingService],
        namespace: Annotated[str | None, param(Namespace)] = None,
        content_type: Annotated[str | None, param(ContentType)] = None,
        file_hash: Annotated[str | None, param(FileHash)] = None,
        created_after: Annotated[dt.datetime | None, param(AwareDatetime)] = None,
        created_before: Annotated[dt.datetime | None, param(AwareDatetime)] = None,
        cursor: UuidCursorQuery = None,
        limit: Annotated[int, QueryParameter(ge=1, le=1000)] = 100,
    ) -> StampPage:
        """Filter by namespace, content type, hash and creation time; keys limited to namespaces see theirs."""
        if namespace is not None:
            await require_namespace(request, namespace)
        return await stamping.page(
            uow, namespaces=principal_of(request).namespaces, namespace=namespace, content_type=content_type,
            file_hash=file_hash.lower() if file_hash else None, created_after=created_after,
            created_before=created_before, cursor=uuid_cursor(cursor),
            limit=limit,
        )  # fmt: skip
