"""Issue 11, defects 1 and 2, without a request: tracebacks and stored error text are safe by construction."""

from __future__ import annotations

import io
import logging
import uuid

import asyncpg
import pytest
import structlog

from omninode_bridge.core.observability import configure_logging
from omninode_bridge.embedded import EmbeddedStack
from tests.integration.conftest import make_settings


def _secret(kind: str) -> str:
    return f"{kind}-s3cr3t-{uuid.uuid4().hex}"


@pytest.mark.parametrize("log_json", [True, False])
def test_d01_tracebacks_show_no_locals_and_classify_database_errors(stack: EmbeddedStack, log_json: bool) -> None:
    value = _secret("traceback")
    fields = {"C": "23505", "M": f"duplicate {value}", "D": f"Key (name)=({value}).", "n": "uq_name", "t": "things"}
    database_error = asyncpg.exceptions.PostgresError.new(fields)
    configure_logging(make_settings(stack, observability={"log_json": log_json}).observability)
    output = io.StringIO()
    handler = logging.getLogger().handlers[0]
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(output)  # the app's own handler and formatter, writing where the test can read
    try:
        secret_local = value  # a local of the failing frame: rich tracebacks would print it
        try:
            raise ValueError(f"wrapped: {database_error}") from database_error
        except ValueError:
            structlog.get_logger("test_d01").exception("failed", hint=secret_local[:4])
            logging.getLogger("test_d01.stdlib").exception("stdlib failure")
    finally:
        configure_logging(make_settings(stack).observability)
    rendered = output.getvalue()
    assert rendered.count("database error (23505 unique_violation, constraint uq_name, table things)") >= 4
    assert "Traceback (most recent call last)" in rendered
    assert value not in rendered
