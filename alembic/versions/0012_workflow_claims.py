"""workflow_claims: runs whose max_parallel cannot bind are claimed task by task, by any process at once

A run with no more forward tasks than its ``max_parallel`` (and every compensation task: they run one after the
other) is "free": its ready tasks are claimed by their own rows (``FOR UPDATE SKIP LOCKED``), so two app
processes take disjoint tasks of one run at the same time instead of taking turns on the run's row. The other
runs keep the claim under the lock of the run's row, which enforces ``max_parallel`` across processes. Rows
written before this migration are not free (the run-row claim, as before).

Revision ID: 0012_workflow_claims
Revises: 0011_workflow_perf
Create Date: 2026-11-30
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012_workflow_claims"
down_revision: str | Sequence[str] | None = "0011_workflow_perf"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("wf_runs", sa.Column("free", sa.Boolean(), server_default=sa.false(), nullable=False,
                                       comment="max_parallel cannot bind: its tasks are claimed by their rows"))  # fmt: skip
    op.add_column("wf_tasks", sa.Column("free", sa.Boolean(), server_default=sa.false(), nullable=False,
                                        comment="Claimed by its own row (its run is free, or a compensation)"))  # fmt: skip
    op.create_index("ix_wf_tasks_free_ready", "wf_tasks", ["next_run_at"], unique=False,
                    postgresql_where=sa.text("status = 'ready' AND free"))  # fmt: skip
    op.create_index("ix_wf_runs_held", "wf_runs", ["id"], unique=False,
                    postgresql_where=sa.text("status IN ('running', 'compensating') AND NOT free"))  # fmt: skip


def downgrade() -> None:
    op.drop_index("ix_wf_runs_held", table_name="wf_runs")
    op.drop_index("ix_wf_tasks_free_ready", table_name="wf_tasks")
    op.drop_column("wf_tasks", "free")
    op.drop_column("wf_runs", "free")
