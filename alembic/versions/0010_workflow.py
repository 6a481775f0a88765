"""workflow: runs, tasks (forward and compensation) and task attempts of the durable DAG engine

Revision ID: 0010_workflow
Revises: 0008
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import advanced_alchemy.types
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0010_workflow"
down_revision: str | Sequence[str] | None = "0009_registry"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TS = advanced_alchemy.types.DateTimeUTC(timezone=True)


def upgrade() -> None:
    op.create_table(
        "wf_runs",
        sa.Column("id", sa.Uuid(), nullable=False, comment="Time-ordered (UUIDv7): the page cursor"),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("namespace", sa.String(length=255), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("outcome", sa.String(length=32), nullable=True),
        sa.Column("cancel_requested", sa.Boolean(), nullable=False),
        sa.Column("compensate", sa.Boolean(), nullable=False),
        sa.Column("max_parallel", sa.Integer(), nullable=False),
        sa.Column("inputs", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("definition", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("idempotency_scope", sa.String(length=400), nullable=True),
        sa.Column("correlation_id", sa.String(length=255), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("deadline_at", _TS, nullable=False),
        sa.Column("finished_at", _TS, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_wf_runs")),
    )
    op.create_index("ix_wf_runs_idempotency", "wf_runs", ["idempotency_scope"], unique=True,
                    postgresql_where=sa.text("idempotency_scope IS NOT NULL"))  # fmt: skip
    op.create_index("ix_wf_runs_active", "wf_runs", ["status"],
                    postgresql_where=sa.text("status IN ('running', 'failing', 'compensating')"))  # fmt: skip
    op.create_table(
        "wf_tasks",
        sa.Column("run_id", sa.Uuid(), nullable=False),
        sa.Column("task_id", sa.String(length=64), nullable=False),
        sa.Column("phase", sa.String(length=16), nullable=False),
        sa.Column(
            "position", sa.Integer(), nullable=False, comment="Topological position (compensations run in reverse)"
        ),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column(
            "spec", postgresql.JSONB(astext_type=sa.Text()), nullable=False, comment="params, retry, timeout_s, when"
        ),
        sa.Column("depends_on", postgresql.ARRAY(sa.String(length=64)), nullable=False),
        sa.Column("pending_deps", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False, comment="The fence: a completion names its attempt"),
        sa.Column("retry_base", sa.Integer(), nullable=False, comment="attempt when a retry of the run reset it"),
        sa.Column("next_run_at", _TS, nullable=True),
        sa.Column("lease_owner", sa.String(length=100), nullable=True),
        sa.Column("lease_until", _TS, nullable=True),
        sa.Column("ready_at", _TS, nullable=True),
        sa.Column("started_at", _TS, nullable=True),
        sa.Column("finished_at", _TS, nullable=True),
        sa.Column("output", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["run_id"], ["wf_runs.id"], name=op.f("fk_wf_tasks_run_id_wf_runs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("run_id", "task_id", "phase", name=op.f("pk_wf_tasks")),
    )
    op.create_index("ix_wf_tasks_ready", "wf_tasks", ["next_run_at"], postgresql_where=sa.text("status = 'ready'"))
    op.create_index("ix_wf_tasks_leased", "wf_tasks", ["lease_until"], postgresql_where=sa.text("status = 'running'"))
    op.create_table(
        "wf_task_attempts",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("run_id", sa.Uuid(), nullable=False),
        sa.Column("task_id", sa.String(length=64), nullable=False),
        sa.Column("phase", sa.String(length=16), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("worker", sa.String(length=100), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("started_at", _TS, nullable=False),
        sa.Column("finished_at", _TS, nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["run_id"], ["wf_runs.id"], name=op.f("fk_wf_task_attempts_run_id_wf_runs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_wf_task_attempts")),
    )
    op.create_index("ux_wf_task_attempts", "wf_task_attempts", ["run_id", "task_id", "phase", "attempt"], unique=True)
    # Notes written by the example workflows' sql tasks (contracts/workflow/queries.yaml: note_put, note_delete).
    op.create_table(
        "wf_notes",
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_wf_notes")),
    )


def downgrade() -> None:
    op.drop_table("wf_notes")
    op.drop_table("wf_task_attempts")
    op.drop_table("wf_tasks")
    op.drop_table("wf_runs")
