"""outbox: pending rows tracked in event_outbox_pending (filled by a trigger) instead of sent_at

Marking an outbox row sent was an UPDATE of the wide row (envelope, headers) and of its index entries;
it is now the delete of a narrow ``event_outbox_pending`` row. The ``event_outbox_staged`` trigger
stages every inserted outbox row, so every writer (Core inserts, COPY, modules' own statements) gets
it without knowing. Rows pending at upgrade time stay pending; ``sent_at`` and the per-row attempt
columns go away (the sent time is in ``event_logs``). Time indexes become BRIN.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-23
"""

from __future__ import annotations

from collections.abc import Sequence

import advanced_alchemy.types
import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# A statement-level trigger with a transition table: one INSERT ... SELECT per statement, however many
# rows it wrote (a batch endpoint's COPY of 1,000 rows costs one trigger call, not 1,000).
_STAGE_FUNCTION = """
CREATE FUNCTION event_outbox_stage() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO event_outbox_pending (id, topic) SELECT id, topic FROM staged;
    RETURN NULL;
END
$$
"""
_STAGE_TRIGGER = """
CREATE TRIGGER event_outbox_staged AFTER INSERT ON event_outbox
REFERENCING NEW TABLE AS staged FOR EACH STATEMENT EXECUTE FUNCTION event_outbox_stage()
"""


def upgrade() -> None:
    """Apply this revision."""
    op.create_table(
        "event_outbox_pending",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column(
            "topic",
            sa.String(length=249),
            nullable=False,
            comment="Copied from the outbox row: the claim filters by it",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_event_outbox_pending")),
    )
    # Writers wait until this migration commits, so no row slips between the backfill and the trigger.
    op.execute("LOCK TABLE event_outbox IN SHARE ROW EXCLUSIVE MODE")
    op.execute("INSERT INTO event_outbox_pending (id, topic) SELECT id, topic FROM event_outbox WHERE sent_at IS NULL")
    op.execute(_STAGE_FUNCTION)
    op.execute(_STAGE_TRIGGER)
    op.drop_index("ix_event_outbox_pending", table_name="event_outbox", postgresql_where=sa.text("sent_at IS NULL"))
    op.drop_index("ix_event_outbox_sent_at", table_name="event_outbox", postgresql_where=sa.text("sent_at IS NOT NULL"))
    op.drop_column("event_outbox", "sent_at")
    op.drop_column("event_outbox", "attempts")
    op.drop_column("event_outbox", "last_error")
    op.create_index("ix_event_outbox_created_at", "event_outbox", ["created_at"], postgresql_using="brin")
    op.drop_index("ix_event_logs_created_at", table_name="event_logs")
    op.create_index("ix_event_logs_created_at", "event_logs", ["created_at"], postgresql_using="brin")


def downgrade() -> None:
    """Revert this revision."""
    op.drop_index("ix_event_logs_created_at", table_name="event_logs", postgresql_using="brin")
    op.create_index("ix_event_logs_created_at", "event_logs", ["created_at"])
    op.drop_index("ix_event_outbox_created_at", table_name="event_outbox", postgresql_using="brin")
    op.add_column("event_outbox", sa.Column("last_error", sa.Text(), nullable=True))
    op.add_column("event_outbox", sa.Column("attempts", sa.Integer(), server_default="0", nullable=False))
    op.add_column(
        "event_outbox",
        sa.Column("sent_at", advanced_alchemy.types.datetime.DateTimeUTC(timezone=True), nullable=True),
    )
    # Rows no longer pending were sent; their exact time is in event_logs, the upgrade's time is close enough.
    op.execute(
        "UPDATE event_outbox o SET sent_at = now() "
        "WHERE NOT EXISTS (SELECT 1 FROM event_outbox_pending p WHERE p.id = o.id)"
    )
    op.create_index(
        "ix_event_outbox_sent_at", "event_outbox", ["sent_at"], postgresql_where=sa.text("sent_at IS NOT NULL")
    )
    op.create_index("ix_event_outbox_pending", "event_outbox", ["id"], postgresql_where=sa.text("sent_at IS NULL"))
    op.execute("DROP TRIGGER event_outbox_staged ON event_outbox")
    op.execute("DROP FUNCTION event_outbox_stage()")
    op.drop_table("event_outbox_pending")
