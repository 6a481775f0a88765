"""hooks_fillfactor: hook_events pages keep 30% free, so marking an event processed is a HOT update

Every accepted hook is updated once, shortly after it is written (``status`` accepted -> processed). With full
pages (fillfactor 100) the new row version goes to another page, and each of the table's eight indexes gets a
new entry: ~66% of those updates were non-HOT in a ``/hooks`` run (``pg_stat_user_tables``). With 30% of each
page free the version stays on its page and no index is touched: 73% HOT in the same run (the rest land on
pages filled before pruning reclaims them). The table takes ~30% more pages. Only pages written from now on
are affected.

Revision ID: 0013_hooks_fillfactor
Revises: 0012_workflow_claims
Create Date: 2026-11-30
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0013_hooks_fillfactor"
down_revision: str | Sequence[str] | None = "0012_workflow_claims"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("ALTER TABLE hook_events SET (fillfactor = 70)")


def downgrade() -> None:
    op.execute("ALTER TABLE hook_events RESET (fillfactor)")
