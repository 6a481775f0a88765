"""The OpenAPI request bodies of ``POST /hooks`` (our hook format or Claude Code's, told apart by
``hook_event_name``) and ``POST /hooks/batch``.

The endpoints parse their bodies themselves (strictly, once, straight to the structs), so they declare no
``data`` parameter for Litestar to decode again and document; these operation classes state the bodies
instead, from msgspec's own JSON Schema of the structs (references inlined, so the document needs no extra
components).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgspec
from litestar.openapi.spec import OpenAPIMediaType, Operation, RequestBody

from omninode_bridge.modules.hooks import schemas

__all__ = ["BATCH_BODY_OPERATION", "HOOK_BODY_OPERATION", "inline_schema"]


def inline_schema(kind: Any) -> dict[str, Any]:
    """msgspec's JSON Schema of ``kind`` with every ``$ref`` replaced by its definition (no recursive types)."""
    document = msgspec.json.schema(kind)
    definitions = document.pop("$defs", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                return resolve(definitions[ref.removeprefix("#/$defs/")])
            return {key: resolve(value) for key, value in node.items()}
        if isinstance(node, list):
            return [resolve(item) for item in node]
        return node

    inlined: dict[str, Any] = resolve(document)
    return inlined


_BODY = {
    "oneOf": [inline_schema(schemas.HookEventIn), inline_schema(schemas.ClaudeCodeHookIn)],
    "description": "A hook in this service's format, or a Claude Code hook event exactly as Claude Code sends it "
    "(recognised by hook_event_name; see POST /hooks/claude-code).",
}


_BATCH_BODY = inline_schema(schemas.HookBatch)


def _json_body(schema: dict[str, Any]) -> RequestBody:
    # The spec type wants a Schema object; the dict is msgspec's JSON Schema, rendered as it is.
    return RequestBody(content={"application/json": OpenAPIMediaType(schema=schema)}, required=True)  # type: ignore[arg-type]  # see above


@dataclass
class HookBodyOperation(Operation):
    """An operation whose request body is either hook format."""

    def __post_init__(self) -> None:
        self.request_body = _json_body(_BODY)


@dataclass
class BatchBodyOperation(Operation):
    """An operation whose request body is a batch of hooks."""

    def __post_init__(self) -> None:
        self.request_body = _json_body(_BATCH_BODY)


HOOK_BODY_OPERATION = HookBodyOperation
BATCH_BODY_OPERATION = BatchBodyOperation
