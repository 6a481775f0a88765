"""Reading request bodies for the stamping endpoints: JSON (capped) or a raw stream."""

from __future__ import annotations

from typing import Any, TypeVar

from litestar import Request

from omninode_bridge.core.errors import ProblemError
from omninode_bridge.core.inputs import check_json_body, convert_strict

__all__ = ["is_json", "read_json"]

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
