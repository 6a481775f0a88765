"""wf_claim_has_ai: a run's "has ai tasks" is a column; the active-runs index is ordered by id; one index fewer

``wf_runs.has_ai`` is set at submit (the definition has an ``ai`` task): the claim statement read it from the
definition (``definition -> 'tasks' @> ...``) once per claimed run, in a CTE joined back to the claimed tasks,
and that join of two CTEs (estimated at one row each) ran as a nested loop: 65,280 comparisons for a batch of
256 single-task runs (auto_explain). With the flag on the row, the claim locks each task's run in the same scan
that picks the task.

``ix_wf_runs_active`` becomes ``(status, id)``: the sweep for free runs that no process settled
(``batch.stranded``) walks the running runs in id order from a cursor, a bounded page per sweep, instead of
checking every running run each time (183 ms per sweep with 3,000 runs waiting).

``ix_wf_tasks_ready`` goes: no statement needs ready tasks of every run in time order that
``ix_wf_tasks_free_ready`` (the free claim) or ``ix_wf_tasks_run_ready`` (per run; the queue gauges) does not
serve, and each task paid an entry in it when submitted ready and again each time it became ready.

Revision ID: 0014_wf_claim_has_ai
Revises: 0013_hooks_fillfactor
Create Date: 2026-11-30
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014_wf_claim_has_ai"
down_revision: str | Sequence[str] | None = "0013_hooks_fillfactor"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ACTIVE = "status IN ('running', 'failing', 'compensating')"


def upgrade() -> None:
    op.add_column("wf_runs", sa.Column("has_ai", sa.Boolean(), nullable=False, server_default=sa.false(),
                                       comment="The definition has an ai task (set at submit)"))  # fmt: skip
    op.execute("UPDATE wf_runs SET has_ai = true WHERE definition -> 'tasks' @> '[{\"kind\": \"ai\"}]'")
    op.drop_index("ix_wf_runs_active", table_name="wf_runs")
    op.create_index("ix_wf_runs_active", "wf_runs", ["status", "id"], postgresql_where=sa.text(_ACTIVE))
    op.drop_index("ix_wf_tasks_ready", table_name="wf_tasks")


def downgrade() -> None:
    op.create_index("ix_wf_tasks_ready", "wf_tasks", ["next_run_at"], postgresql_where=sa.text("status = 'ready'"))
    op.drop_index("ix_wf_runs_active", table_name="wf_runs")
    op.create_index("ix_wf_runs_active", "wf_runs", ["status"], postgresql_where=sa.text(_ACTIVE))
    op.drop_column("wf_runs", "has_ai")
