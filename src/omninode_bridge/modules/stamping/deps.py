"""Reading request bodies for the stamping endpoints: JSON (capped) or a raw stream, and the service."""

from __future__ import annotations

import re
from typing import Any, TypeVar

import msgspec
from litestar import Request
from litestar.datastructures import State
from litestar.exceptions import ValidationException

from omninode_bridge.core.errors import ProblemError
from omninode_bridge.modules.stamping.services import StampingService

__all__ = ["is_json", "provide_stamping", "read_json"]

T = TypeVar("T")

_PATH = re.compile(r"at `\$\.?([^`]*)`")
_decoders: dict[type[Any], msgspec.json.Decoder[Any]] = {}


def provide_stamping(state: State) -> StampingService:
    """The stamping service of the running app."""
    return state.runtime.extras["stamping"]


def is_json(request: Request[Any, Any, Any]) -> bool:
    """Whether the body is JSON (the other content types are raw uploads)."""
    media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    return media_type == "application/json" or media_type.endswith("+json")


async def read_json(request: Request[Any, Any, Any], schema: type[T], limit: int) -> T:
    """Read at most ``limit`` bytes of JSON and decode it into ``schema``.

    Raises:
        ProblemError: 413 past ``limit``.
        ValidationException: The JSON is malformed or does not match ``schema`` (422 naming the field).
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
    decoder = _decoders.get(schema)
    if decoder is None:
        decoder = _decoders[schema] = msgspec.json.Decoder(schema)
    try:
        return decoder.decode(b"".join(chunks))
    except msgspec.ValidationError as exc:
        match = _PATH.search(str(exc))
        field = match.group(1) if match and match.group(1) else None
        message = _PATH.sub("", str(exc)).rstrip(" -")
        raise ValidationException(
            detail=str(exc), extra=[{"key": field, "source": "body", "message": message}]
        ) from exc
    except msgspec.DecodeError as exc:
        raise ValidationException(
            detail=f"Malformed JSON: {exc}",
            extra=[{"key": None, "source": "body", "message": f"malformed JSON: {exc}"}],
        ) from exc
