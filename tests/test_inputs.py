"""The shared input types and checks of ``core.inputs`` (pure logic, no servers)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import msgspec
import pytest

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
    text,
)


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
