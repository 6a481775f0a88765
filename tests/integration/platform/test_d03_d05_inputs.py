"""Issue 11, defects 3, 4, 5 and the strict-type part of 14: bad input is a 4xx on every endpoint, never a 500.

The cases are derived from the app's own OpenAPI document, so a new endpoint is covered as soon as it is
documented: every string query parameter gets a NUL, every JSON body a NUL in each string field and in a
key of each free-form object, every datetime a naive, a numeric and an out-of-range value, every integer
an overflow and a non-decimal spelling, every pattern a trailing newline, and every JSON body a 5,000-deep
document and invalid UTF-8 (see ``tests/support/openapi_cases.py`` for how the cases are derived).
"""

from __future__ import annotations

import re
from typing import Any

import msgspec
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from tests.support.openapi_cases import (
    DOCUMENT,
    body_cases,
    body_operations,
    fill_path,
    of_type,
    operations,
    query_cases,
    required_query,
    resolve,
    sample,
)


def _strings(name: str, schema: dict[str, Any]) -> list[tuple[str, str]]:
    return [("nul", "a\x00b")] if of_type(schema, "string") is not None or "enum" in resolve(schema) else []


def _datetimes(name: str, schema: dict[str, Any]) -> list[tuple[str, str]]:
    if of_type(schema, "string", "date-time") is None:
        return []
    return [("naive", "2026-01-01T00:00:00"), ("number", "0.5"), ("out-of-range", "9999-12-31T23:59:59-14:00")]


def _integers(name: str, schema: dict[str, Any]) -> list[tuple[str, str]]:
    if of_type(schema, "integer") is not None:
        return [("overflow", "99999999999999999999999"), ("exponent", "1e3"), ("decimal", "10.0")]
    if name == "cursor" or name.endswith("_cursor"):
        return [("overflow", "99999999999999999999999"), ("bigint-overflow", "9223372036854775808")]
    return []


def _single_line(pattern: str) -> bool:
    """Not multi-line text (which takes newlines on purpose, anywhere): a newline inside a value is refused.

    A ``^...$`` pattern refuses that too, yet lets a trailing newline through: the defect tested here.
    """
    value = sample(pattern)
    return re.search(pattern, f"{value}\n{value}") is None


def _newlines(name: str, schema: dict[str, Any]) -> list[tuple[str, str]]:
    string = of_type(schema, "string")
    if string is None or "pattern" not in string:
        return []
    return [("newline", sample(string["pattern"]) + "\n")]


def _body_nul(dotted: str, schema: dict[str, Any]) -> list[tuple[str, Any, str]]:
    cases: list[tuple[str, Any, str]] = []
    if of_type(schema, "string") is not None:
        cases.append(("nul", "a\x00b", dotted))
    array = of_type(schema, "array")
    if array is not None and of_type(array.get("items", {}), "string") is not None:
        cases.append(("nul-item", ["a\x00b"], f"{dotted}[0]"))
    free = of_type(schema, "object")
    if free is not None and not free.get("properties"):
        cases.append(("nul-key", {"k\x00": "v"}, dotted))
        cases.append(("nul-value", {"k": {"deep": "a\x00b"}}, f"{dotted}.k.deep"))
    return cases


def _body_datetimes(dotted: str, schema: dict[str, Any]) -> list[tuple[str, Any, str]]:
    if of_type(schema, "string", "date-time") is None:
        return []
    return [
        ("naive", "2026-01-01T00:00:00", dotted),
        ("timestamp", 0, dotted),
        ("timestamp-string", "1700000000", dotted),
        ("out-of-range", "9999-12-31T23:59:59-14:00", dotted),
    ]


def _body_numbers(dotted: str, schema: dict[str, Any]) -> list[tuple[str, Any, str]]:
    if of_type(schema, "integer") is not None or of_type(schema, "number") is not None:
        return [("as-string", "5", dotted)]
    return []


def _body_newlines(dotted: str, schema: dict[str, Any]) -> list[tuple[str, Any, str]]:
    cases: list[tuple[str, Any, str]] = []
    string = of_type(schema, "string")
    if string is not None and "pattern" in string and _single_line(string["pattern"]):
        cases.append(("newline", sample(string["pattern"]) + "\n", dotted))
    array = of_type(schema, "array")
    item = of_type(array.get("items", {}), "string") if array is not None else None
    if item is not None and "pattern" in item and _single_line(item["pattern"]):
        cases.append(("newline-item", [sample(item["pattern"]) + "\n"], dotted))
    return cases


def _problem(response: Any) -> dict[str, Any]:
    assert response.headers["content-type"].startswith("application/problem+json"), response.text
    return response.json()


async def _send(
    client: AsyncTestClient[Litestar], method: str, url: str, headers: dict[str, str], **kwargs: Any
) -> Any:
    return await client.request(method, url, headers=headers, timeout=30, **kwargs)


async def _query(
    client: AsyncTestClient[Litestar], headers: dict[str, str], method: str, path: str, params: dict[str, str]
) -> Any:
    return await _send(client, method, fill_path(path, _operation(method, path)), headers, params=params)


def _named(problem: dict[str, Any], field: str) -> bool:
    named = [str(error.get("field") or "") for error in problem.get("errors", [])]
    return any(name == field or name.startswith((field + ".", field + "[")) for name in named)


def _operation(method: str, path: str) -> dict[str, Any]:
    return DOCUMENT["paths"][path][method.lower()]


# --- query parameters --------------------------------------------------------------------------------


async def _query_value_refused(
    client: AsyncTestClient[Litestar], headers: dict[str, str], method: str, path: str, name: str, value: str
) -> None:
    """The operation answers a 422 naming the query parameter ``name`` when it is sent ``value``."""
    operation = _operation(method, path)
    params = {**required_query(operation, name), name: value}
    response = await _send(client, method, fill_path(path, operation), headers, params=params)
    assert response.status_code == 422, response.text
    assert _named(_problem(response), name)


@pytest.mark.parametrize(("method", "path", "name", "value"), query_cases(_strings))
async def test_d03_nul_in_query_parameter_is_422(
    client: AsyncTestClient[Litestar], admin_headers: dict[str, str], method: str, path: str, name: str, value: str
) -> None:
    await _query_value_refused(client, admin_headers, method, path, name, value)


@pytest.mark.parametrize(("method", "path", "name", "value"), query_cases(_datetimes))
async def test_d04_bad_datetime_query_parameter_is_422(
    client: AsyncTestClient[Litestar], admin_headers: dict[str, str], method: str, path: str, name: str, value: str
) -> None:
    await _query_value_refused(client, admin_headers, method, path, name, value)


@pytest.mark.parametrize(("method", "path", "name", "value"), query_cases(_integers))
async def test_d04_overflowing_or_non_decimal_integer_query_parameter_is_422(
    client: AsyncTestClient[Litestar], admin_headers: dict[str, str], method: str, path: str, name: str, value: str
) -> None:
    await _query_value_refused(client, admin_headers, method, path, name, value)


@pytest.mark.parametrize(("method", "path", "name", "value"), query_cases(_newlines))
async def test_d05_trailing_newline_in_pattern_query_parameter_is_422(
    client: AsyncTestClient[Litestar], admin_headers: dict[str, str], method: str, path: str, name: str, value: str
) -> None:
    await _query_value_refused(client, admin_headers, method, path, name, value)


_CURSOR_LISTS = [
    pytest.param(path, id=path)
    for method, path, operation in operations()
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
for _method, _route, _op in operations():
    for _parameter in _op.get("parameters", []):
        if _parameter["in"] != "path":
            continue
        _schema = resolve(_parameter["schema"])
        if _schema.get("type") == "integer":
            _PATH_CASES.append(pytest.param(_method, _route, _parameter["name"], "99999999999999999999999",
                                            id=f"{_method} {_route} {_parameter['name']} overflow"))  # fmt: skip
        if "pattern" in _schema:
            _PATH_CASES.append(pytest.param(_method, _route, _parameter["name"], sample(_schema["pattern"]) + "%0A",
                                            id=f"{_method} {_route} {_parameter['name']} newline"))  # fmt: skip


@pytest.mark.parametrize(("method", "path", "name", "value"), _PATH_CASES)
async def test_d04_d05_bad_path_parameter_is_422(
    client: AsyncTestClient[Litestar], admin_headers: dict[str, str], method: str, path: str, name: str, value: str
) -> None:
    url = fill_path(path, _operation(method, path), **{name: value})
    response = await _send(client, method, url, admin_headers, json={} if method != "GET" else None)
    assert response.status_code == 422, response.text


# --- JSON bodies -------------------------------------------------------------------------------------


async def _post_body(
    client: AsyncTestClient[Litestar], headers: dict[str, str], method: str, path: str, body: Any
) -> Any:
    url = fill_path(path, _operation(method, path))
    json_headers = {**headers, "Content-Type": "application/json"}
    return await client.request(method, url, content=msgspec.json.encode(body), headers=json_headers, timeout=30)


async def _body_value_refused(
    client: AsyncTestClient[Litestar], headers: dict[str, str], method: str, path: str, body: Any, field: str
) -> None:
    """The operation answers a 422 naming ``field`` when it is sent ``body``."""
    response = await _post_body(client, headers, method, path, body)
    assert response.status_code == 422, response.text
    assert _named(_problem(response), field), response.text


@pytest.mark.parametrize(("method", "path", "body", "field"), body_cases(_body_nul))
async def test_d03_nul_in_json_body_is_422(
    client: AsyncTestClient[Litestar], admin_headers: dict[str, str], method: str, path: str, body: Any, field: str
) -> None:
    await _body_value_refused(client, admin_headers, method, path, body, field)


@pytest.mark.parametrize(("method", "path", "body", "field"), body_cases(_body_datetimes))
async def test_d04_d14_bad_datetime_in_json_body_is_422(
    client: AsyncTestClient[Litestar], admin_headers: dict[str, str], method: str, path: str, body: Any, field: str
) -> None:
    await _body_value_refused(client, admin_headers, method, path, body, field)


@pytest.mark.parametrize(("method", "path", "body", "field"), body_cases(_body_numbers))
async def test_d14_number_as_string_in_json_body_is_422(
    client: AsyncTestClient[Litestar], admin_headers: dict[str, str], method: str, path: str, body: Any, field: str
) -> None:
    await _body_value_refused(client, admin_headers, method, path, body, field)


@pytest.mark.parametrize(("method", "path", "body", "field"), body_cases(_body_newlines))
async def test_d05_trailing_newline_in_pattern_body_field_is_422(
    client: AsyncTestClient[Litestar], admin_headers: dict[str, str], method: str, path: str, body: Any, field: str
) -> None:
    await _body_value_refused(client, admin_headers, method, path, body, field)


_BODY_ENDPOINTS = [pytest.param(m, p, id=f"{m} {p}") for m, p, _, _ in body_operations()]


@pytest.mark.parametrize(("method", "path"), _BODY_ENDPOINTS)
async def test_d04_json_nested_5000_deep_is_422(
    client: AsyncTestClient[Litestar], admin_headers: dict[str, str], method: str, path: str
) -> None:
    body = b'{"data":' + b"[" * 5000 + b"]" * 5000 + b"}"
    url = fill_path(path, _operation(method, path))
    response = await client.request(
        method, url, content=body, headers={**admin_headers, "Content-Type": "application/json"}, timeout=30
    )
    assert response.status_code == 422, response.text
    _problem(response)


@pytest.mark.parametrize(("method", "path"), _BODY_ENDPOINTS)
async def test_d04_invalid_utf8_in_json_body_is_400(
    client: AsyncTestClient[Litestar], admin_headers: dict[str, str], method: str, path: str
) -> None:
    url = fill_path(path, _operation(method, path))
    response = await client.request(
        method, url, content=b'{"name": "\xff\xfe"}', headers={**admin_headers, "Content-Type": "application/json"},
        timeout=30,
    )  # fmt: skip
    assert response.status_code == 400, response.text
    _problem(response)


def test_d03_d05_the_parameterised_cases_cover_the_known_inputs() -> None:
    """The derivation finds what the issue named, so an OpenAPI change cannot silently empty a case list."""
    ids = {case.id for case in query_cases(_strings) + body_cases(_body_nul) + query_cases(_datetimes)}
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
    newline_ids = {case.id for case in body_cases(_body_newlines)}
    assert "POST /admin/api-keys scopes newline-item" in newline_ids
    assert "POST /admin/api-keys namespaces newline-item" in newline_ids
