"""Codegen tables."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from advanced_alchemy.base import DefaultBase
from advanced_alchemy.types import DateTimeUTC
from sqlalchemy import BigInteger, Identity, Index, String
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

__all__ = ["SessionEvent"]


class SessionEvent(DefaultBase):
    """A status event of a codegen session, recorded by the status consumer."""

    __tablename__ = "codegen_session_events"
    __table_args__ = (Index("ix_codegen_session_events_session", "session_id", "occurred_at"),)

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    event_id: Mapped[uuid.UUID] = mapped_column(unique=True)
    session_id: Mapped[uuid.UUID]
    status: Mapped[str] = mapped_column(String(32))
    progress_percent: Mapped[float]
    current_step: Mapped[str] = mapped_column(String(500))
    details: Mapped[dict[str, Any]] = mapped_column("metadata", JSONB, default=dict)
    correlation_id: Mapped[str] = mapped_column(String(255))
    occurred_at: Mapped[dt.datetime] = mapped_column(DateTimeUTC(timezone=True))
