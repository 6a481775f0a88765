"""wf_no_hot_foreign_keys: wf_tasks and wf_task_attempts no longer reference wf_runs by foreign key

Each foreign key check is a trigger call and a query that locks the run's row ``FOR KEY SHARE``, and it ran on
the hottest statements of the engine:

* a submit checked every task it inserted (about 20 ms of a 100-run bulk submit's 60, auto_explain);
* a claim batch checked every attempt row it inserted, and again every task it completed: an update of a row that
  the same transaction wrote before (the claim) re-checks the key even though it did not change. About 20 ms of a
  256-task batch's 125 (auto_explain, ``log_triggers``).

What the keys guarded holds by construction: a task row is only written by the statement that writes its run
(``submit``), an attempt row only by the claim of an existing task, and no code deletes runs (the cascade never
ran). Queue tables on PostgreSQL are commonly kept free of foreign keys for the same reason.

Revision ID: 0015_wf_no_hot_foreign_keys
Revises: 0014_wf_claim_has_ai
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0015_wf_no_hot_foreign_keys"
down_revision: str | Sequence[str] | None = "0014_wf_claim_has_ai"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_constraint("fk_wf_tasks_run_id_wf_runs", "wf_tasks", type_="foreignkey")
    op.drop_constraint("fk_wf_task_attempts_run_id_wf_runs", "wf_task_attempts", type_="foreignkey")


def downgrade() -> None:
    op.create_foreign_key("fk_wf_tasks_run_id_wf_runs", "wf_tasks", "wf_runs", ["run_id"], ["id"], ondelete="CASCADE")
    op.create_foreign_key(
        "fk_wf_task_attempts_run_id_wf_runs", "wf_task_attempts", "wf_runs", ["run_id"], ["id"], ondelete="CASCADE"
    )
