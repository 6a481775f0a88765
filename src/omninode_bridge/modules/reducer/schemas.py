"""The namespace statistics the reducer serves (HTTP bodies)."""

from __future__ import annotations

import datetime as dt
import uuid

import msgspec

__all__ = ["NamespaceStats"]


class NamespaceStats(msgspec.Struct):
    """What the reducer has aggregated for one namespace (eventually consistent within one window)."""

    namespace: str
    total_stamps: int
    total_size_bytes: int
    unique_file_types: list[str]
    workflow_count: int
    recent_workflow_ids: list[uuid.UUID]
    version: int
    current_fsm_state: str
    created_at: dt.datetime
    last_updated: dt.datetime
