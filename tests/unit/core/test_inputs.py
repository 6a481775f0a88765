"""The shared input types and checks of ``core.inputs`` (pure logic, no servers)."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated

import msgspec
import pytest
from litestar import Litestar, get
from litestar.exceptions import ValidationException
from litestar.params import FromPath, FromQuery

from omninode_bridge.core.inputs import (
    AwareDatetime,
    BigintCursor,
    Identifier,
    InputError,
    MalformedBodyError,
    MultilineText,
    Namespace,
    anchored,
    check_datetime_range,
    check_json_body,
    check_query_and_path,
    check_query_types,
    convert_strict,
    param,
    text,
)
from omninode_bridge.core.paging import bigint_cursor, uuid_cursor


class _Form(msgspec.Struct):
    name: Identifier | None = None
    namespace: Namespace | None = None
    note: MultilineText | None = None
    slug: Annotated[str, text(max_length=20, pattern="[a-z]+")] | None = None
    cursor: BigintCursor | None = None
    at: AwareDatetime | None = None


@pytest.mark.parametrize(
    "field_value",
    [
        {"name": "a\x00b"},
        {"name": "tab\there"},
        {"name": "trailing\n"},
        {"namespace": "demo\n"},
        {"namespace": "has space"},
        {"slug": "abc\n"},
        {"note": "nul\x00"},
        {"cursor": 99999999999999999999999},
        {"cursor": -1},
        {"at": "2026-01-01T00:00:00"},
    ],
)
def test_shared_types_refuse_bad_values(field_value: dict[str, object]) -> None:
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert(field_value, _Form)


def test_shared_types_accept_good_values() -> None:
    form = msgspec.convert(
        {"name": "s-1", "namespace": "my_app", "note": "two\nlines\tand tab", "slug": "abc", "cursor": 5,
         "at": "2026-01-01T00:00:00Z"},
        _Form,
    )  # fmt: skip
    assert form.note == "two\nlines\tand tab"


def test_anchored_does_not_accept_a_trailing_newline() -> None:
    import re

    assert re.search(anchored("[a-z]+"), "abc")
    assert not re.search(anchored("[a-z]+"), "abc\n")


@pytest.mark.parametrize(
    "value",
    [
        dt.datetime(2026, 1, 1),  # naive
        dt.datetime(9999, 12, 31, 23, 59, 59, tzinfo=dt.timezone(dt.timedelta(hours=-14))),
        dt.datetime(1, 1, 1, tzinfo=dt.UTC),
    ],
)
def test_datetime_range(value: dt.datetime) -> None:
    with pytest.raises(InputError):
        check_datetime_range(value, "timestamp")


def test_json_body_checks() -> None:
    assert check_json_body(b'{"a": [1, {"b": "c"}]}') == {"a": [1, {"b": "c"}]}
    assert check_json_body(b"") is None
    with pytest.raises(InputError, match="NUL") as nul:
        check_json_body(b'{"data": {"k": "\\u0000"}}')
    assert nul.value.field == "data.k"
    with pytest.raises(InputError, match="NUL"):
        check_json_body(b'{"k\\u0000": 1}')
    with pytest.raises(InputError, match="deeper"):
        check_json_body(b"[" * 65 + b"]" * 65)
    check_json_body(b"[" * 64 + b"]" * 64)
    with pytest.raises(InputError, match="deeper"):
        check_json_body(b'{"data": ' + b"[" * 5000 + b"]" * 5000 + b"}")
    with pytest.raises(MalformedBodyError, match="UTF-8"):
        check_json_body(b'{"a": "\xff"}')
    with pytest.raises(MalformedBodyError, match="not valid JSON"):
        check_json_body(b'{"a": ')
    # An escaped backslash followed by u0000 is not a NUL.
    assert check_json_body(b'{"a": "\\\\u0000"}') == {"a": "\\u0000"}


@pytest.mark.parametrize(
    ("scope", "field", "source"),
    [
        ({"path": "/hooks/events", "query_string": b"source=%00"}, "source", "query"),
        ({"path": "/hooks/events", "query_string": b"a=1&source=x%0A"}, "source", "query"),
        ({"path": "/hooks/sessions/a\x00b", "query_string": b""}, "path", "path"),
    ],
)
def test_query_and_path_control_characters(scope: dict[str, object], field: str, source: str) -> None:
    with pytest.raises(InputError) as refused:
        check_query_and_path(scope)  # type: ignore[arg-type]
    assert (refused.value.field, refused.value.source) == (field, source)


def test_query_and_path_plain_values_pass() -> None:
    check_query_and_path({"path": "/hooks/events", "query_string": b"source=claude%20code&limit=5"})  # type: ignore[arg-type]


# --- strict types: the handler's own signature decides how each query value and body must be spelled ---


class _Body(msgspec.Struct):
    limit: int = 1
    expires_at: AwareDatetime | None = None


@get("/typed/{item_id:int}", sync_to_thread=False)
def _typed(
    item_id: FromPath[int],
    limit: FromQuery[int] = 1,
    ratio: FromQuery[float] = 1.0,
    since: FromQuery[dt.datetime | None] = None,
    flag: FromQuery[bool] = False,
    name: Annotated[str | None, param(Namespace, name="ns")] = None,
) -> None:
    """A handler with one query parameter of each kind (never called)."""


def _scope(query: bytes) -> dict[str, object]:
    return {"type": "http", "path": "/typed/1", "query_string": query, "path_params": {"item_id": 1},
            "route_handler": _typed}  # fmt: skip


@pytest.mark.parametrize(
    ("query", "field", "message"),
    [
        (b"limit=1e3", "limit", "integer"),
        (b"limit=10.0", "limit", "integer"),
        (b"since=0.5", "since", "RFC 3339"),
        (b"since=1700000000", "since", "RFC 3339"),
        (b"since=2026-01-01T00:00:00", "since", "timezone"),
        (b"since=9999-12-31T23:59:59-14:00", "since", "between"),
        (b"ratio=abc", "ratio", "decimal"),
    ],
)
def test_query_values_must_be_spelled_as_their_type(query: bytes, field: str, message: str) -> None:
    Litestar([_typed])  # registers the handler (its signature model) as an app would
    with pytest.raises(InputError, match=message) as refused:
        check_query_types(_scope(query))  # type: ignore[arg-type]
    assert (refused.value.field, refused.value.source) == (field, "query")


def test_query_values_spelled_as_their_type_pass() -> None:
    Litestar([_typed])
    query = b"limit=-5&ratio=2.5e3&since=2026-01-01T00:00:00%2B02:00&flag=true&ns=x&limit="
    check_query_types(_scope(query))  # type: ignore[arg-type]


def test_convert_strict_refuses_numbers_as_strings_and_timestamps() -> None:
    assert convert_strict({"limit": 5, "expires_at": "2026-01-01T00:00:00Z"}, _Body).limit == 5
    for body in ({"limit": "5"}, {"expires_at": 0}, {"expires_at": "1700000000"}, {"limit": 1e3}):
        with pytest.raises(ValidationException) as refused:
            convert_strict(body, _Body)
        assert refused.value.extra[0]["key"] in ("limit", "expires_at")  # type: ignore[index]


def test_param_carries_the_shared_constraints() -> None:
    parameter = param(Namespace, description="where", name="ns")
    assert (parameter.pattern, parameter.max_length, parameter.description, parameter.name) == (
        anchored(r"[a-zA-Z0-9_.-]{1,255}"), 255, "where", "ns",
    )  # fmt: skip
    assert param(text(max_length=7)).max_length == 7


@pytest.mark.parametrize("raw", ["", None])
def test_empty_cursor_is_the_first_page(raw: str | None) -> None:
    assert bigint_cursor(raw) is None
    assert uuid_cursor(raw) is None


@pytest.mark.parametrize("raw", ["9223372036854775808", "99999999999999999999999", "-1", "1e3", "١٢"])
def test_bigint_cursor_refuses_what_no_page_handed_out(raw: str) -> None:
    with pytest.raises(InputError):
        bigint_cursor(raw)


def test_cursors_decode() -> None:
    assert bigint_cursor("9223372036854775807") == 2**63 - 1
    assert uuid_cursor("00000000-0000-4000-8000-000000000000") == uuid.UUID("00000000-0000-4000-8000-000000000000")
    with pytest.raises(InputError):
        uuid_cursor("not-a-uuid")
