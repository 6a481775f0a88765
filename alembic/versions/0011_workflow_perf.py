"""workflow_perf: per-run partial indexes of the engine's claim and completion statements

The claim counts a run's running tasks and picks its ready ones; a completion finds the waiting tasks that
depend on the completed ones. Without these indexes each of them read every task of the run (a 1,000-task
fan-out read 1,000 rows per statement, for every batch).

Revision ID: 0011_workflow_perf
Revises: 0010_workflow
Create Date: 2026-11-30
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011_workflow_perf"
down_revision: str | Sequence[str] | None = "0010_workflow"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_wf_tasks_run_ready", "wf_tasks", ["run_id", "next_run_at"], unique=False,
                    postgresql_where=sa.text("status = 'ready'"))  # fmt: skip
    op.create_index("ix_wf_tasks_run_busy", "wf_tasks", ["run_id", "status"], unique=False,
                    postgresql_where=sa.text("status IN ('running', 'waiting')"))  # fmt: skip


def downgrade() -> None:
    op.drop_index("ix_wf_tasks_run_busy", table_name="wf_tasks")
    op.drop_index("ix_wf_tasks_run_ready", table_name="wf_tasks")
