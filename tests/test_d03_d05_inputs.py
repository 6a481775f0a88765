"""Issue 11, defects 3, 4, 5 and the strict-type part of 14: bad input is a 4xx on every endpoint, never a 500.

The cases are derived from the app's own OpenAPI document, so a new endpoint is covered as soon as it is
documented: every string query parameter gets a NUL, every JSON body a NUL in each string field and in a
key of each free-form object, every datetime a naive, a numeric and an out-of-range value, every integer
an overflow and a non-decimal spelling, every pattern a trailing newline, and every JSON body a 5,000-deep
document and invalid UTF-8. The stamping endpoints read their JSON by hand (raw uploads share the route),
so their bodies are added from their schemas (:data:`_HAND_READ_BODIES`).
"""

from __future__ import annotations

import re
import uuid
from typing import Any

import msgspec
import pytest
from litestar import Litestar
from litestar.routes import HTTPRoute
from litestar.testing import AsyncTestClient

from omninode_bridge.app import create_app
from omninode_bridge.modules.stamping.schemas import HashRequest, StampCreate, ValidationRequest
from omninode_bridge.settings import load_settings

_METHODS = ("get", "post", "put", "patch", "delete")
_HAND_READ_BODIES: dict[tuple[str, str], type[msgspec.Struct]] = {
    ("POST", "/stamp"): StampCreate,
    ("POST", "/hash"): HashRequest,
    ("POST", "/validate"): ValidationRequest,
}
# Values tried, in order, for a pattern-constrained string; the first that matches is the valid base.
_SAMPLES = ["demo", "my_app", "a" * 64, "0" * 64, "hooks", "x", "1", "", "00000000-0000-4000-8000-000000000000"]


def _document() -> dict[str, Any]:
    """The OpenAPI document of an app that is built but never started (nothing connects)."""
    settings = load_settings({"OMNINODE_ENV": "test", "OMNINODE_LOG_LEVEL": "WARNING"}, env_file=None).with_services(
        database_url="postgresql+asyncpg://u:p@127.0.0.1:9/x", redis_url="redis://127.0.0.1:9/0", kafka="127.0.0.1:9"
    )
    app = create_app(settings)
    document = app.openapi_schema.to_schema()
    # Body fields are read from the handlers' own types: Litestar's document drops the constraints of list
    # items (scopes: ["hooks\n"] must be tested too), and the hand-read stamping bodies are not in it.
    bodies = dict(_HAND_READ_BODIES)
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


_DOC = _document()


def _resolve(schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        ref = schema["$ref"]
        name = ("$defs/" if ref.startswith("#/$defs/") else "") + ref.rsplit("/", 1)[1]
        schema = _DOC["components"]["schemas"][name]
    return schema


def _options(schema: dict[str, Any]) -> list[dict[str, Any]]:
    """The non-null alternatives of a schema (``oneOf``/``anyOf`` unpacked), with outer constraints kept."""
    schema = _resolve(schema)
    alternatives = schema.get("oneOf") or schema.get("anyOf")
    if not alternatives:
        return [schema] if schema.get("type") != "null" else []
    outer = {k: v for k, v in schema.items() if k not in ("oneOf", "anyOf")}
    found = []
    for alternative in alternatives:
        for option in _options(alternative):
            found.append({**outer, **option} if option.get("type") == "string" else option)
    return found


def _of_type(schema: dict[str, Any], kind: str, fmt: str | None = None) -> dict[str, Any] | None:
    for option in _options(schema):
        types = option.get("type")
        if (kind == types or (isinstance(types, list) and kind in types)) and option.get("format") == fmt:
            return option
    return None


def _sample(pattern: str) -> str:
    for candidate in _SAMPLES:
        if re.search(pattern, candidate):
            return candidate
    raise AssertionError(f"add a sample matching {pattern!r} to _SAMPLES")


def _operations() -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method.upper(), path, operation)
        for path, item in _DOC["paths"].items()
        for method, operation in item.items()
        if method in _METHODS
    ]


def _path(path: str, operation: dict[str, Any], **override: str) -> str:
    """The path with every path parameter filled with a valid value (or ``override``)."""
    for parameter in operation.get("parameters", []):
        if parameter["in"] != "path":
            continue
        schema = _resolve(parameter["schema"])
        if parameter["name"] in override:
            value = override[parameter["name"]]
        elif schema.get("format") == "uuid":
            value = str(uuid.uuid4())
        elif schema.get("type") == "integer":
            value = "1"
        else:
            value = _sample(schema["pattern"]) if "pattern" in schema else "demo"
        path = path.replace("{" + parameter["name"] + "}", value)
    return path


def _query_cases(select: Any) -> list[Any]:
    cases = []
    for method, path, operation in _operations():
        for parameter in operation.get("parameters", []):
            if parameter["in"] == "query":
                for label, value in select(parameter["name"], parameter["schema"]):
                    cases.append(
                        pytest.param(
                            method, path, parameter["name"], value, id=f"{method} {path} {parameter['name']} {label}"
                        )
                    )
    return cases


def _body_fields(
    schema: dict[str, Any], prefix: str = "", depth: int = 0
) -> list[tuple[str, list[str | int], dict[str, Any]]]:
    """``(dotted name, key path, field schema)`` of every field of a body schema, nested objects included."""
    fields = []
    for option in _options(schema):
        for name, sub in option.get("properties", {}).items():
            dotted = f"{prefix}.{name}" if prefix else name
            fields.append((dotted, [name], sub))
            if depth < 3:
                for inner_name, inner_path, inner in _body_fields(sub, dotted, depth + 1):
                    fields.append((inner_name, [name, *inner_path], inner))
                items = _of_type(sub, "array")
                if items and "items" in items:
                    for inner_name, inner_path, inner in _body_fields(items["items"], f"{dotted}[0]", depth + 1):
                        fields.append((inner_name, [name, 0, *inner_path], inner))
    return fields


def _valid(schema: dict[str, Any]) -> Any:
    """A valid value of ``schema``: the base each bad case changes in one place."""
    options = _options(schema)
    if not options:
        return None
    option = options[0]
    if "enum" in option:
        return next(value for value in option["enum"] if value is not None)
    kind = option.get("type")
    kind = next((k for k in kind if k != "null"), None) if isinstance(kind, list) else kind
    if kind == "string":
        if option.get("format") == "date-time":
            return "2026-01-01T00:00:00Z"
        if option.get("format") == "uuid":
            return str(uuid.uuid4())
        return _sample(option["pattern"]) if "pattern" in option else "x" * max(1, option.get("minLength", 1))
    if kind in ("integer", "number"):
        return option.get("minimum", 1)
    if kind == "boolean":
        return True
    if kind == "array":
        return [_valid(option.get("items", {}))] * option.get("minItems", 0)
    if kind == "object":
        properties = option.get("properties", {})
        return {name: _valid(properties[name]) for name in option.get("required", [])}
    return None


def _with(base: Any, key_path: list[str | int], value: Any) -> Any:
    """A copy of ``base`` with ``value`` at ``key_path`` (missing containers created)."""
    if not key_path:
        return value
    key, rest = key_path[0], key_path[1:]
    if isinstance(key, int):
        items = list(base) if isinstance(base, list) and base else [{}]
        items[0] = _with(items[0], rest, value)
        return items
    container = dict(base) if isinstance(base, dict) else {}
    container[key] = _with(container.get(key), rest, value)
    return container


def _body_operations() -> list[tuple[str, str, dict[str, Any], dict[str, Any]]]:
    found = []
    for method, path, operation in _operations():
        content = operation.get("requestBody", {}).get("content", {})
        if "application/json" in content:
            found.append((method, path, operation, content["application/json"]["schema"]))
    return found


def _body_cases(select: Any) -> list[Any]:
    cases = []
    for method, path, _, schema in _body_operations():
        base = _valid(schema)
        for dotted, key_path, field_schema in _body_fields(schema):
            for label, value, expected_field in select(dotted, field_schema):
                cases.append(
                    pytest.param(
                        method, path, _with(base, key_path, value), expected_field,
                        id=f"{method} {path} {dotted} {label}",
                    )
                )  # fmt: skip
    return cases


def _strings(name: str, schema: dict[str, Any]) -> list[tuple[str, str]]:
    return [("nul", "a\x00b")] if _of_type(schema, "string") is not None or "enum" in _resolve(schema) else []


def _datetimes(name: str, schema: dict[str, Any]) -> list[tuple[str, str]]:
    if _of_type(schema, "string", "date-time") is None:
        return []
    return [("naive", "2026-01-01T00:00:00"), ("number", "0.5"), ("out-of-range", "9999-12-31T23:59:59-14:00")]


def _integers(name: str, schema: dict[str, Any]) -> list[tuple[str, str]]:
    if _of_type(schema, "integer") is not None:
        return [("overflow", "99999999999999999999999"), ("exponent", "1e3"), ("decimal", "10.0")]
    if name == "cursor" or name.endswith("_cursor"):
        return [("overflow", "99999999999999999999999"), ("bigint-overflow", "9223372036854775808")]
    return []


def _single_line(pattern: str) -> bool:
    """Not multi-line text (which takes newlines on purpose, anywhere): a newline inside a value is refused.

    A ``^...$`` pattern refuses that too, yet lets a trailing newline through: the defect tested here.
    """
    sample = _sample(pattern)
    return re.search(pattern, f"{sample}\n{sample}") is None


def _newlines(name: str, schema: dict[str, Any]) -> list[tuple[str, str]]:
    string = _of_type(schema, "string")
    if string is None or "pattern" not in string:
        return []
    return [("newline", _sample(string["pattern"]) + "\n")]


def _body_nul(dotted: str, schema: dict[str, Any]) -> list[tuple[str, Any, str]]:
    cases: list[tuple[str, Any, str]] = []
    if _of_type(schema, "string") is not None:
        cases.append(("nul", "a\x00b", dotted))
    array = _of_type(schema, "array")
    if array is not None and _of_type(array.get("items", {}), "string") is not None:
        cases.append(("nul-item", ["a\x00b"], f"{dotted}[0]"))
    free = _of_type(schema, "object")
    if free is not None and not free.get("properties"):
        cases.append(("nul-key", {"k\x00": "v"}, dotted))
        cases.append(("nul-value", {"k": {"deep": "a\x00b"}}, f"{dotted}.k.deep"))
    return cases


def _body_datetimes(dotted: str, schema: dict[str, Any]) -> list[tuple[str, Any, str]]:
    if _of_type(schema, "string", "date-time") is None:
        return []
    return [
        ("naive", "2026-01-01T00:00:00", dotted),
        ("timestamp", 0, dotted),
        ("timestamp-string", "1700000000", dotted),
        ("out-of-range", "9999-12-31T23:59:59-14:00", dotted),
    ]


def _body_numbers(dotted: str, schema: dict[str, Any]) -> list[tuple[str, Any, str]]:
    if _of_type(schema, "integer") is not None or _of_type(schema, "number") is not None:
        return [("as-string", "5", dotted)]
    return []


def _body_newlines(dotted: str, schema: dict[str, Any]) -> list[tuple[str, Any, str]]:
    cases: list[tuple[str, Any, str]] = []
    string = _of_type(schema, "string")
    if string is not None and "pattern" in string and _single_line(string["pattern"]):
        cases.append(("newline", _sample(string["pattern"]) + "\n", dotted))
    array = _of_type(schema, "array")
    item = _of_type(array.get("items", {}), "string") if array is not None else None
    if item is not None and "pattern" in item and _single_line(item["pattern"]):
        cases.append(("newline-item", [_sample(item["pattern"]) + "\n"], dotted))
    return cases


def _problem(response: Any) -> dict[str, Any]:
    assert response.headers["content-type"].startswith("application/problem+json"), response.text
    return response.json()


async def _send(
    client: AsyncTestClient[Litestar], method: str, url: str, headers: dict[str, str], **kwargs: Any
) -> Any:
    return await client.request(method, url, headers=headers, timeout=30, **kwargs)


def _named(problem: dict[str, Any], field: str) -> bool:
    named = [str(error.get("field") or "") for error in problem.get("errors", [])]
    return any(name == field or name.startswith((field + ".", field + "[")) for name in named)


def _operation(method: str, path: str) -> dict[str, Any]:
    return _DOC["paths"][path][method.lower()]


# --- query parameters --------------------------------------------------------------------------------


@pytest.mark.parametrize(("method", "path", "name", "value"), _query_cases(_strings))
async def test_d03_nul_in_query_parameter_is_422(
    client: AsyncTestClient[Litestar], admin_headers: dict[str, str], method: str, path: str, name: str, value: str
) -> None:
    response = await _send(client, method, _path(path, _operation(method, path)), admin_headers, params={name: value})
    assert response.status_code == 422, response.text
    assert _named(_problem(response), name)


@pytest.mark.parametrize(("method", "path", "name", "value"), _query_cases(_datetimes))
async def test_d04_bad_datetime_query_parameter_is_422(
    client: AsyncTestClient[Litestar], admin_headers: dict[str, str], method: str, path: str, name: str, value: str
) -> None:
    response = await _send(client, method, _path(path, _operation(method, path)), admin_headers, params={name: value})
    assert response.status_code == 422, response.text
    assert _named(_problem(response), name)


@pytest.mark.parametrize(("method", "path", "name", "value"), _query_cases(_integers))
async def test_d04_overflowing_or_non_decimal_integer_query_parameter_is_422(
    client: AsyncTestClient[Litestar], admin_headers: dict[str, str], method: str, path: str, name: str, value: str
) -> None:
    response = await _send(client, method, _path(path, _operation(method, path)), admin_headers, params={name: value})
    assert response.status_code == 422, response.text
    assert _named(_problem(response), name)


@pytest.mark.parametrize(("method", "path", "name", "value"), _query_cases(_newlines))
async def test_d05_trailing_newline_in_pattern_query_parameter_is_422(
    client: AsyncTestClient[Litestar], admin_headers: dict[str, str], method: str, path: str, name: str, value: str
) -> None:
    response = await _send(client, method, _path(path, _operation(method, path)), admin_headers, params={name: value})
    assert response.status_code == 422, response.text
    assert _named(_problem(response), name)


_CURSOR_LISTS = [
    pytest.param(path, id=path)
    for method, path, operation in _operations()
    if method == "GET" and any(p["name"] == "cursor" for p in operation.get("parameters", []))
]


@pytest.mark.parametrize("path", _CURSOR_LISTS)
async def test_d14_empty_cursor_is_the_first_page(
    client: AsyncTestClient[Litestar], admin_headers: dict[str, str], path: str
) -> None:
    first = await client.get(path, headers=admin_headers)
    empty = await client.get(path, headers=admin_headers, params={"cursor": ""})
    assert first.status_code == empty.status_code == 200, empty.text


# --- path parameters ---------------------------------------------------------------------------------

_PATH_CASES = []
for _method, _route, _op in _operations():
    for _parameter in _op.get("parameters", []):
        if _parameter["in"] != "path":
            continue
        _schema = _resolve(_parameter["schema"])
        if _schema.get("type") == "integer":
            _PATH_CASES.append(pytest.param(_method, _route, _parameter["name"], "99999999999999999999999",
                                            id=f"{_method} {_route} {_parameter['name']} overflow"))  # fmt: skip
        if "pattern" in _schema:
            _PATH_CASES.append(pytest.param(_method, _route, _parameter["name"], _sample(_schema["pattern"]) + "%0A",
                                            id=f"{_method} {_route} {_parameter['name']} newline"))  # fmt: skip


@pytest.mark.parametrize(("method", "path", "name", "value"), _PATH_CASES)
async def test_d04_d05_bad_path_parameter_is_422(
    client: AsyncTestClient[Litestar], admin_headers: dict[str, str], method: str, path: str, name: str, value: str
) -> None:
    url = _path(path, _operation(method, path), **{name: value})
    response = await _send(client, method, url, admin_headers, json={} if method != "GET" else None)
    assert response.status_code == 422, response.text


# --- JSON bodies -------------------------------------------------------------------------------------


async def _post_body(
    client: AsyncTestClient[Litestar], headers: dict[str, str], method: str, path: str, body: Any
) -> Any:
    url = _path(path, _operation(method, path))
    json_headers = {**headers, "Content-Type": "application/json"}
    return await client.request(method, url, content=msgspec.json.encode(body), headers=json_headers, timeout=30)


@pytest.mark.parametrize(("method", "path", "body", "field"), _body_cases(_body_nul))
async def test_d03_nul_in_json_body_is_422(
    client: AsyncTestClient[Litestar], admin_headers: dict[str, str], method: str, path: str, body: Any, field: str
) -> None:
    response = await _post_body(client, admin_headers, method, path, body)
    assert response.status_code == 422, response.text
    assert _named(_problem(response), field), response.text


@pytest.mark.parametrize(("method", "path", "body", "field"), _body_cases(_body_datetimes))
async def test_d04_d14_bad_datetime_in_json_body_is_422(
    client: AsyncTestClient[Litestar], admin_headers: dict[str, str], method: str, path: str, body: Any, field: str
) -> None:
    response = await _post_body(client, admin_headers, method, path, body)
    assert response.status_code == 422, response.text
    assert _named(_problem(response), field), response.text


@pytest.mark.parametrize(("method", "path", "body", "field"), _body_cases(_body_numbers))
async def test_d14_number_as_string_in_json_body_is_422(
    client: AsyncTestClient[Litestar], admin_headers: dict[str, str], method: str, path: str, body: Any, field: str
) -> None:
    response = await _post_body(client, admin_headers, method, path, body)
    assert response.status_code == 422, response.text
    assert _named(_problem(response), field), response.text


@pytest.mark.parametrize(("method", "path", "body", "field"), _body_cases(_body_newlines))
async def test_d05_trailing_newline_in_pattern_body_field_is_422(
    client: AsyncTestClient[Litestar], admin_headers: dict[str, str], method: str, path: str, body: Any, field: str
) -> None:
    response = await _post_body(client, admin_headers, method, path, body)
    assert response.status_code == 422, response.text
    assert _named(_problem(response), field), response.text


_BODY_ENDPOINTS = [pytest.param(m, p, id=f"{m} {p}") for m, p, _, _ in _body_operations()]


@pytest.mark.parametrize(("method", "path"), _BODY_ENDPOINTS)
async def test_d04_json_nested_5000_deep_is_422(
    client: AsyncTestClient[Litestar], admin_headers: dict[str, str], method: str, path: str
) -> None:
    body = b'{"data":' + b"[" * 5000 + b"]" * 5000 + b"}"
    url = _path(path, _operation(method, path))
    response = await client.request(
        method, url, content=body, headers={**admin_headers, "Content-Type": "application/json"}, timeout=30
    )
    assert response.status_code == 422, response.text
    _problem(response)


@pytest.mark.parametrize(("method", "path"), _BODY_ENDPOINTS)
async def test_d04_invalid_utf8_in_json_body_is_400(
    client: AsyncTestClient[Litestar], admin_headers: dict[str, str], method: str, path: str
) -> None:
    url = _path(path, _operation(method, path))
    response = await client.request(
        method, url, content=b'{"name": "\xff\xfe"}', headers={**admin_headers, "Content-Type": "application/json"},
        timeout=30,
    )  # fmt: skip
    assert response.status_code == 400, response.text
    _problem(response)


def test_d03_d05_the_parameterised_cases_cover_the_known_inputs() -> None:
    """The derivation finds what the issue named, so an OpenAPI change cannot silently empty a case list."""
    ids = {case.id for case in _query_cases(_strings) + _body_cases(_body_nul) + _query_cases(_datetimes)}
    for expected in (
        "GET /admin/audit action nul",
        "GET /stamps content_type nul",
        "GET /events/dlq dlq_topic nul",
        "POST /admin/api-keys name nul",
        "POST /events/dlq/redrive dlq_topic nul",
        "POST /codegen/sessions/{session_id}/status current_step nul",
        "POST /codegen/sessions/{session_id}/status metadata nul-key",
        "POST /stamp metadata nul-value",
        "GET /stamps created_before naive",
        "GET /admin/audit since naive",
    ):
        assert expected in ids, expected
    newline_ids = {case.id for case in _body_cases(_body_newlines)}
    assert "POST /admin/api-keys scopes newline-item" in newline_ids
    assert "POST /admin/api-keys namespaces newline-item" in newline_ids
