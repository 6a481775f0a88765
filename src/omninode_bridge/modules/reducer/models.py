"""The reducer's aggregation state (seed 001's ``bridge_states``)."""

from __future__ import annotations

import datetime as dt
import uuid

from advanced_alchemy.base import DefaultBase
from advanced_alchemy.types import DateTimeUTC
from sqlalchemy import BigInteger, Integer, String, Text
from sqlalchemy.dialects.postgresql import ARRAY, UUID
from sqlalchemy.orm import Mapped, mapped_column

__all__ = ["BridgeState"]


class BridgeState(DefaultBase):
    """One row per namespace, updated by one atomic upsert per persisted batch."""

    __tablename__ = "bridge_states"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, comment="state_id")
    namespace: Mapped[str] = mapped_column(String(255), unique=True)
    version: Mapped[int] = mapped_column(Integer, comment="Incremented by every update (optimistic version)")
    metadata_version: Mapped[str] = mapped_column(String(16))
    total_stamps: Mapped[int] = mapped_column(BigInteger)
    total_size_bytes: Mapped[int] = mapped_column(BigInteger)
    unique_file_types: Mapped[list[str]] = mapped_column(ARRAY(Text))
    workflow_count: Mapped[int] = mapped_column(BigInteger)
    recent_workflow_ids: Mapped[list[uuid.UUID]] = mapped_column(ARRAY(UUID(as_uuid=True)))
    current_fsm_state: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[dt.datetime] = mapped_column(DateTimeUTC(timezone=True))
    last_updated: Mapped[dt.datetime] = mapped_column(DateTimeUTC(timezone=True))
