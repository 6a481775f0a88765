"""Stamps without a server: content types, comment blocks per language, signatures and key rotation."""

from __future__ import annotations

import uuid

import pytest

from omninode_bridge.modules.stamping.services import (
    Keyring,
    detect_content_type,
    find_block,
    render_block,
    without_block,
)
from omninode_bridge.modules.stamping.services._stamp_format import comment_style, insert_block
from tests.support.stamping_samples import SAMPLES


@pytest.mark.parametrize(("name", "data", "file_path", "expected"), SAMPLES, ids=[s[0] for s in SAMPLES])
def test_content_type_detection(name: str, data: bytes, file_path: str | None, expected: str) -> None:
    assert detect_content_type(data, file_path) == expected


@pytest.mark.parametrize(
    ("content_type", "first_line", "last_line"),
    [
        ("text/x-python", "# ---BEGIN ONEX STAMP---", "# ---END ONEX STAMP---"),
        ("text/javascript", "// ---BEGIN ONEX STAMP---", "// ---END ONEX STAMP---"),
        ("application/sql", "-- ---BEGIN ONEX STAMP---", "-- ---END ONEX STAMP---"),
        ("text/html", "<!--", "-->"),
        ("text/css", "/*", "*/"),
        ("text/plain", "---BEGIN ONEX STAMP---", "---END ONEX STAMP---"),
    ],
)
def test_block_is_a_comment_of_the_language(content_type: str, first_line: str, last_line: str) -> None:
    keyring = Keyring("a-secret-for-unit-tests-0123456789")
    fields = keyring.sign({
        "metadata_version": "0.1", "stamp_id": str(uuid.uuid4()), "hash_algorithm": "blake3", "file_hash": "0" * 64,
        "namespace": "n", "content_type": content_type, "size_bytes": "5", "created_at": "2026-11-23T00:00:00Z",
    })  # fmt: skip
    style = comment_style(content_type)
    assert style is not None
    body = b"body\n"
    stamped = insert_block(body, render_block(fields, style))
    lines = stamped.decode().splitlines()
    assert lines[0] == first_line
    assert lines[-2] == last_line
    found = find_block(stamped)
    assert found is not None
    assert found.fields == fields
    assert without_block(stamped) == body
    assert keyring.verify(found.fields) == (True, None)


def test_json_has_no_safe_comment_so_its_stamp_is_detached() -> None:
    assert comment_style("application/json") is None


def test_rotated_secret_still_validates_old_stamps() -> None:
    old = Keyring("the-old-secret-0123456789abcdef0123")
    fields = old.sign({
        "metadata_version": "0.1", "stamp_id": "s", "hash_algorithm": "blake3", "file_hash": "0" * 64,
        "namespace": "n", "content_type": "text/plain", "size_bytes": "1", "created_at": "t",
    })  # fmt: skip
    rotated = Keyring("the-new-secret-0123456789abcdef0123", ["the-old-secret-0123456789abcdef0123"])
    assert rotated.verify(fields) == (True, None)
    assert rotated.sign(dict(fields))["key_id"] != fields["key_id"]
    forgotten = Keyring("the-new-secret-0123456789abcdef0123")
    assert forgotten.verify(fields)[0] is False
