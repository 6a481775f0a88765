"""Stored error text keeps only a classification (issue 11, defect 2), without a request."""

from __future__ import annotations

import uuid
from typing import Any, Literal

import httpx
import msgspec
import pytest

from omninode_bridge.core.breaker import CircuitOpenError
from omninode_bridge.core.safe_errors import describe_error


def _secret(kind: str) -> str:
    return f"{kind}-s3cr3t-{uuid.uuid4().hex}"


def _msgspec_error(value: str) -> Exception:
    try:
        msgspec.json.decode(msgspec.json.encode({"mode": value}), type=dict[str, Literal["a", "b"]])
    except msgspec.ValidationError as exc:
        return exc
    raise AssertionError("no error")


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda v: httpx.ConnectError(f"cannot reach https://user:{v}@host"), "httpx.ConnectError"),
        (lambda v: ValueError(f"bad value {v}"), "ValueError"),
        (lambda v: TimeoutError(f"{v} timed out"), "timed out"),
        (lambda v: ConnectionRefusedError(111, "Connection refused", v), "ConnectionRefusedError: Connection refused"),
        (_msgspec_error, "invalid data: Invalid enum value '…' - at `$[...]`"),
        (lambda v: CircuitOpenError("database", 3), "database is unavailable (circuit open); retry in 3s"),
    ],
)
def test_d02_describe_error_keeps_only_a_classification(make: Any, expected: str) -> None:
    value = _secret("described")
    described = describe_error(make(value))
    assert described == expected
    assert value not in described
