"""Stamping services: hashing, content types, the O.N.E. v0.1 block, the workflow, validation, lookups."""

from __future__ import annotations

from omninode_bridge.modules.stamping.services._content_type import detect_content_type, is_textual
from omninode_bridge.modules.stamping.services._hashing import HEAD_BYTES, HashPolicy, StreamDigest, hash_stream
from omninode_bridge.modules.stamping.services._service import StampingService, StampOutcome, check_contract_steps
from omninode_bridge.modules.stamping.services._stamp_format import (
    BEGIN,
    END,
    Keyring,
    find_block,
    render_block,
    without_block,
)
from omninode_bridge.modules.stamping.services._stamps import (
    StampRequest,
    check_file_path,
    check_namespace,
    record_of,
)
from omninode_bridge.modules.stamping.services._validation import check_stamp, parse_detached
from omninode_bridge.modules.stamping.services._workflow import STEP_NAMES, StampContext, StampSteps

__all__ = [
    "BEGIN",
    "END",
    "HEAD_BYTES",
    "STEP_NAMES",
    "HashPolicy",
    "Keyring",
    "StampContext",
    "StampOutcome",
    "StampRequest",
    "StampSteps",
    "StampingService",
    "StreamDigest",
    "check_contract_steps",
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
