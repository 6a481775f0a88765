"""Test cases derived from the app's OpenAPI document: every operation, parameter and body field.

Used by the parameterised input tests (``test_d03_d05_inputs``) so that a newly documented endpoint is
covered without editing any list. The stamping endpoints read their JSON by hand (raw uploads share the
route), so their bodies come from their schemas (:data:`HAND_READ_BODIES`); every body is described by the
handler's own type, because Litestar's document drops the constraints of list items.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

import msgspec
import pytest
from litestar.routes import HTTPRoute

from omninode_bridge.app import create_app
from omninode_bridge.modules.stamping.schemas import HashRequest, StampCreate, ValidationRequest
from omninode_bridge.settings import load_settings

__all__ = [
    "DOCUMENT",
    "PROBLEM",
    "PROBLEM_REF",
    "body_cases",
    "body_fields",
    "body_operations",
    "fill_path",
    "is_problem",
    "of_type",
    "operations",
    "options",
    "query_cases",
    "resolve",
    "sample",
    "valid",
    "with_value",
]

METHODS = ("get", "post", "put", "patch", "delete")
PROBLEM = "application/problem+json"
PROBLEM_REF = "#/components/schemas/Problem"
HAND_READ_BODIES: dict[tuple[str, str], type[msgspec.Struct]] = {
    ("POST", "/stamp"): StampCreate,
    ("POST", "/hash"): HashRequest,
    ("POST", "/validate"): ValidationRequest,
}
# Values tried, in order, for a pattern-constrained string; the first that matches is the valid base.
SAMPLES = [
    "demo", "my_app", "a" * 64, "0" * 64, "hooks", "x", "1", "", "00000000-0000-4000-8000-000000000000",
    # registry: semantic versions, MCP server names, URLs, version selectors, node types, health states
    "1.0.0", "io.github.example/weather", "https://example.com/mcp", "latest", "service", "passing",
]  # fmt: skip


def document() -> dict[str, Any]:
    """The OpenAPI document of an app that is built but never started (nothing connects)."""
    settings = load_settings({"OMNINODE_ENV": "test", "OMNINODE_LOG_LEVEL": "WARNING"}, env_file=None).with_services(
        database_url="postgresql+asyncpg://u:p@127.0.0.1:9/x", redis_url="redis://127.0.0.1:9/0", kafka="127.0.0.1:9"
    )
    app = create_app(settings)
    document = app.openapi_schema.to_schema()
    # Body fields are read from the handlers' own types: Litestar's document drops the constraints of list
    # items (scopes: ["hooks\n"] must be tested too), and the hand-read stamping bodies are not in it.
    bodies = dict(HAND_READ_BODIES)
    for route in app.routes:
        if isinstance(route, HTTPRoute):
            for handler in route.route_handlers:
                data = handler.parsed_fn_signature.parameters.get("data")
                if data is not None and data.annotation is not Any:
                    for method in handler.http_methods:
                        bodies[(method, route.path_format)] = data.annotation
    components = document.setdefault("components", {}).setdefault("schemas", {})
    for (method, path), body_type in bodies.items():
        operation = document["paths"][path][method.lower()]
        content = operation.setdefault("requestBody", {}).setdefault("content", {})
        if content and "application/json" not in content:
            continue
        schema = msgspec.json.schema(body_type, ref_template="#/$defs/{name}")
        components.update({f"$defs/{name}": sub for name, sub in schema.pop("$defs", {}).items()})
        content["application/json"] = {"schema": schema}
    return document


DOCUMENT = document()


def resolve(schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        ref = schema["$ref"]
        name = ("$defs/" if ref.startswith("#/$defs/") else "") + ref.rsplit("/", 1)[1]
        schema = DOCUMENT["components"]["schemas"][name]
    return schema


def options(schema: dict[str, Any]) -> list[dict[str, Any]]:
    """The non-null alternatives of a schema (``oneOf``/``anyOf`` unpacked), with outer constraints kept."""
    schema = resolve(schema)
    alternatives = schema.get("oneOf") or schema.get("anyOf")
    if not alternatives:
        return [schema] if schema.get("type") != "null" else []
    outer = {k: v for k, v in schema.items() if k not in ("oneOf", "anyOf")}
    found = []
    for alternative in alternatives:
        for option in options(alternative):
            found.append({**outer, **option} if option.get("type") == "string" else option)
    return found


def of_type(schema: dict[str, Any], kind: str, fmt: str | None = None) -> dict[str, Any] | None:
    for option in options(schema):
        types = option.get("type")
        if (kind == types or (isinstance(types, list) and kind in types)) and option.get("format") == fmt:
            return option
    return None


def sample(pattern: str) -> str:
    for candidate in SAMPLES:
        if re.search(pattern, candidate):
            return candidate
    raise AssertionError(f"add a sample matching {pattern!r} to SAMPLES")


def operations() -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method.upper(), path, operation)
        for path, item in DOCUMENT["paths"].items()
        for method, operation in item.items()
        if method in METHODS
    ]


def valid_value(schema: dict[str, Any]) -> str:
    """A value a parameter of ``schema`` accepts."""
    schema = resolve(schema)
    if schema.get("format") == "uuid":
        return str(uuid.uuid4())
    if schema.get("type") == "integer":
        return "1"
    return sample(schema["pattern"]) if "pattern" in schema else "demo"


def fill_path(path: str, operation: dict[str, Any], **override: str) -> str:
    """The path with every path parameter filled with a valid value (or ``override``)."""
    for parameter in operation.get("parameters", []):
        if parameter["in"] == "path":
            value = override.get(parameter["name"]) or valid_value(parameter["schema"])
            path = path.replace("{" + parameter["name"] + "}", value)
    return path


def required_query(operation: dict[str, Any], but: str) -> dict[str, str]:
    """Valid values of the operation's required query parameters other than ``but`` (the one under test)."""
    return {
        parameter["name"]: valid_value(parameter["schema"])
        for parameter in operation.get("parameters", [])
        if parameter["in"] == "query" and parameter.get("required") and parameter["name"] != but
    }


def query_cases(select: Any) -> list[Any]:
    cases = []
    for method, path, operation in operations():
        for parameter in operation.get("parameters", []):
            if parameter["in"] == "query":
                for label, value in select(parameter["name"], parameter["schema"]):
                    cases.append(
                        pytest.param(
                            method, path, parameter["name"], value, id=f"{method} {path} {parameter['name']} {label}"
                        )
                    )
    return cases


def body_fields(
    schema: dict[str, Any], prefix: str = "", depth: int = 0
) -> list[tuple[str, list[str | int], dict[str, Any]]]:
    """``(dotted name, key path, field schema)`` of every field of a body schema, nested objects included."""
    fields = []
    for option in options(schema):
        for name, sub in option.get("properties", {}).items():
            dotted = f"{prefix}.{name}" if prefix else name
            fields.append((dotted, [name], sub))
            if depth < 3:
                for inner_name, inner_path, inner in body_fields(sub, dotted, depth + 1):
                    fields.append((inner_name, [name, *inner_path], inner))
                items = of_type(sub, "array")
                if items and "items" in items:
                    for inner_name, inner_path, inner in body_fields(items["items"], f"{dotted}[0]", depth + 1):
                        fields.append((inner_name, [name, 0, *inner_path], inner))
    return fields


def valid(schema: dict[str, Any]) -> Any:
    """A valid value of ``schema``: the base each bad case changes in one place."""
    alternatives = options(schema)
    if not alternatives:
        return None
    option = alternatives[0]
    if "enum" in option:
        return next(value for value in option["enum"] if value is not None)
    kind = option.get("type")
    kind = next((k for k in kind if k != "null"), None) if isinstance(kind, list) else kind
    if kind == "string":
        if option.get("format") == "date-time":
            return "2026-01-01T00:00:00Z"
        if option.get("format") == "uuid":
            return str(uuid.uuid4())
        return sample(option["pattern"]) if "pattern" in option else "x" * max(1, option.get("minLength", 1))
    if kind in ("integer", "number"):
        return option.get("minimum", 1)
    if kind == "boolean":
        return True
    if kind == "array":
        return [valid(option.get("items", {}))] * option.get("minItems", 0)
    if kind == "object":
        properties = option.get("properties", {})
        return {name: valid(properties[name]) for name in option.get("required", [])}
    return None


def with_value(base: Any, key_path: list[str | int], value: Any) -> Any:
    """A copy of ``base`` with ``value`` at ``key_path`` (missing containers created)."""
    if not key_path:
        return value
    key, rest = key_path[0], key_path[1:]
    if isinstance(key, int):
        items = list(base) if isinstance(base, list) and base else [{}]
        items[0] = with_value(items[0], rest, value)
        return items
    container = dict(base) if isinstance(base, dict) else {}
    container[key] = with_value(container.get(key), rest, value)
    return container


def body_operations() -> list[tuple[str, str, dict[str, Any], dict[str, Any]]]:
    found = []
    for method, path, operation in operations():
        content = operation.get("requestBody", {}).get("content", {})
        if "application/json" in content:
            found.append((method, path, operation, content["application/json"]["schema"]))
    return found


def body_cases(select: Any) -> list[Any]:
    cases = []
    for method, path, _, schema in body_operations():
        base = valid(schema)
        for dotted, key_path, field_schema in body_fields(schema):
            for label, value, expected_field in select(dotted, field_schema):
                cases.append(
                    pytest.param(
                        method, path, with_value(base, key_path, value), expected_field,
                        id=f"{method} {path} {dotted} {label}",
                    )
                )  # fmt: skip
    return cases


def is_problem(response: dict[str, Any]) -> bool:
    """Whether a documented response is the shared ``Problem`` schema, and only that."""
    content = response.get("content") or {}
    return list(content) == [PROBLEM] and content[PROBLEM]["schema"] == {"$ref": PROBLEM_REF}
