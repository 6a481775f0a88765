"""Stamping tables."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any, cast

from advanced_alchemy.base import DefaultBase
from advanced_alchemy.types import DateTimeUTC
from sqlalchemy import BigInteger, Index, String, Table, Text, UniqueConstraint
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

__all__ = ["STAMPS_TABLE", "StampRow"]


class StampRow(DefaultBase):
    """One O.N.E. v0.1 stamp: content identity (namespace, BLAKE3 hash) and the signed block."""

    __tablename__ = "stamping_stamps"
    __table_args__ = (
        # Stamping the same content in the same namespace again returns this row (idempotency).
        UniqueConstraint("namespace", "file_hash", name="uq_stamping_stamps_namespace_hash"),
        Index("ix_stamping_stamps_file_hash", "file_hash"),
        Index("ix_stamping_stamps_namespace_id", "namespace", "id"),
        Index("ix_stamping_stamps_content_type_id", "content_type", "id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, comment="The stamp id (UUIDv7: time-ordered)")
    namespace: Mapped[str] = mapped_column(String(255))
    file_hash: Mapped[str] = mapped_column(String(64))
    content_type: Mapped[str] = mapped_column(String(255))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    file_path: Mapped[str | None] = mapped_column(String(4096), default=None)
    details: Mapped[dict[str, Any]] = mapped_column("metadata", JSONB, default=dict)
    key_id: Mapped[str] = mapped_column(String(32))
    signature: Mapped[str] = mapped_column(String(64))
    stamp: Mapped[str] = mapped_column(Text, comment="The block in plain form, as signed")
    workflow_id: Mapped[uuid.UUID]
    created_at: Mapped[dt.datetime] = mapped_column(DateTimeUTC(timezone=True))


#: The class's table, for Core statements (SQLAlchemy annotates ``__table__`` as the wider FromClause).
STAMPS_TABLE = cast("Table", StampRow.__table__)
