"""Stamping endpoints: ``/hash``, ``/stamp``, ``/validate``, ``/stamp/{file_hash}`` and ``/stamps``."""

from __future__ import annotations

import datetime as dt
import time
import uuid
from typing import Annotated, Any, TypeVar

from litestar import Controller, Request, Response, get, post
from litestar.di import NamedDependency
from litestar.params import QueryParameter

from omninode_bridge.core.db import UnitOfWork
from omninode_bridge.core.errors import ProblemError, correlation_id_of
from omninode_bridge.core.inputs import AwareDatetime, Namespace, check_json_body, convert_strict, param
from omninode_bridge.core.openapi import documented, error_responses
from omninode_bridge.core.paging import UuidCursorQuery, uuid_cursor
from omninode_bridge.core.steps import RunFailedError
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
    StampOutcome,
    StampRequest,
    check_file_path,
    check_namespace,
    check_stamp,
    find_block,
    hash_stream,
    parse_detached,
    record_of,
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


T = TypeVar("T")


def is_json(request: Request[Any, Any, Any]) -> bool:
    """Whether the body is JSON (the other content types are raw uploads)."""
    media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    return media_type == "application/json" or media_type.endswith("+json")


async def read_json(request: Request[Any, Any, Any], schema: type[T], limit: int) -> T:
    """Read at most ``limit`` bytes of JSON and decode it into ``schema``.

    Raises:
        ProblemError: 413 past ``limit``.
        MalformedBodyError: Not JSON or not UTF-8 (400).
        InputError: NUL in a string or key, or nested too deep (422).
        ValidationException: The JSON does not match ``schema`` (422 naming the field).
    """
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise ProblemError(413, f"JSON bodies are limited to {limit} bytes; upload raw content instead.",
                           slug="payload-too-large")  # fmt: skip
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ProblemError(413, f"JSON bodies are limited to {limit} bytes; upload raw content instead.",
                               slug="payload-too-large")  # fmt: skip
        chunks.append(chunk)
    # The same checks as every other JSON body (NUL, depth, UTF-8), then msgspec's strict conversion.
    return convert_strict(check_json_body(b"".join(chunks)), schema)


def _response(outcome: StampOutcome, began: float) -> Response[StampResponse]:
    """201 for a new stamp, 200 for the existing one."""
    response = StampResponse(
        stamp_id=outcome.stamp_id, file_hash=outcome.file_hash, stamped_content=outcome.stamped_content,
        stamp=outcome.stamp, namespace=outcome.namespace, content_type=outcome.content_type,
        size_bytes=outcome.size_bytes, metadata_version=outcome.metadata_version,
        processing_time_ms=_elapsed_ms(began), workflow_state=outcome.workflow_state,
        workflow_id=outcome.workflow_id, created=outcome.created,
        intelligence="degraded" if outcome.degraded else "used", created_at=outcome.created_at,
        file_path=outcome.file_path, metadata=outcome.metadata,
    )  # fmt: skip
    return Response(response, status_code=201 if outcome.created else 200)


class StampingController(Controller):
    """BLAKE3 hashing and O.N.E. v0.1 stamps (scope ``stamping``; keys may be limited to namespaces)."""

    tags = ["stamping"]
    opt = require_scope("stamping")
    security = API_KEY_SECURITY

    @post("/hash", operation_id="hashContent", summary="BLAKE3 hash of a body", status_code=200,
          request_max_body_size=None, responses=_UPLOAD_RESPONSES, description=_RAW_NOTE)  # fmt: skip
    async def hash_content(
        self,
        request: Request[Any, Any, Any],
        stamping: NamedDependency[StampingService],
        stamping_state: NamedDependency[StampingState],
    ) -> HashResponse:
        """Hash JSON ``{"content": str}`` (its UTF-8 bytes) or the raw body; no stamp is stored."""
        began = time.perf_counter()
        settings = stamping_state.settings
        policy = stamping.policy
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
        """Hash, sign and store a stamp through the stamping workflow; 201 when new, 200 when it existed.

        Text content comes back as ``stamped_content`` with the block prepended as a comment (an older block
        is replaced, never nested); binary content gets a detached ``stamp``.
        """
        began = time.perf_counter()
        settings = stamping_state.settings
        correlation_id = correlation_id_of(request) or ""
        if is_json(request):
            body = await read_json(request, StampCreate, stamping_state.max_json_bytes)
            item = StampRequest(body.namespace, body.file_path, body.metadata, content=body.content.encode(),
                                correlation_id=correlation_id)  # fmt: skip
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
            item = StampRequest(namespace, file_path, digest=digest, correlation_id=correlation_id)
        try:
            outcome = await stamping.stamp(uow, item)
        except RunFailedError as exc:
            raise ProblemError(
                500, f"The stamping workflow failed at step {exc.step}: {exc.error}", slug="workflow-failed",
                extra={"workflow_id": str(exc.workflow_id), "failed_step": exc.step},
            ) from exc  # fmt: skip
        return _response(outcome, began)

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
