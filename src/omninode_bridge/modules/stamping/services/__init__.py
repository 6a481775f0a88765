"""Stamping services: hashing, content types, the O.N.E. v0.1 block, the workflow steps, validation."""

from __future__ import annotations

from omninode_bridge.modules.stamping.services._content_type import detect_content_type, is_textual
from omninode_bridge.modules.stamping.services._hashing import HEAD_BYTES, HashPolicy, StreamDigest, hash_stream
from omninode_bridge.modules.stamping.services._stamp_format import (
    BEGIN,
    END,
    Keyring,
    find_block,
    render_block,
    without_block,
)
from omninode_bridge.modules.stamping.services._stamps import (
    StampingService,
    StampInput,
    check_file_path,
    check_namespace,
    record_of,
)
from omninode_bridge.modules.stamping.services._validation import check_stamp, parse_detached

__all__ = [
    "BEGIN",
    "END",
    "HEAD_BYTES",
    "HashPolicy",
    "Keyring",
    "StampInput",
    "StampingService",
    "StreamDigest",
    "check_file_path",
    "check_namespace",
    "check_stamp",
    "detect_content_type",
    "find_block",
    "hash_stream",
    "is_textual",
    "parse_detached",
    "record_of",
    "render_block",
    "without_block",
]
