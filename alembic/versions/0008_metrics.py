"""metrics: executions (one row per execution and per attempt) and per (task type, model) statistics

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import advanced_alchemy.types
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "metrics_executions",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("execution_id", sa.Uuid(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("task_type", sa.String(length=64), nullable=False),
        sa.Column("model_id", sa.String(length=64), nullable=True),
        sa.Column("strategy", sa.String(length=16), nullable=False),
        sa.Column("routed", sa.Boolean(), nullable=False),
        sa.Column("streamed", sa.Boolean(), nullable=False),
        sa.Column("outcome", sa.String(length=32), nullable=False),
        sa.Column("error_class", sa.String(length=32), nullable=True),
        sa.Column("error_detail", sa.String(length=400), nullable=True),
        sa.Column("latency_ms", sa.Float(), nullable=False),
        sa.Column("ttft_ms", sa.Float(), nullable=True),
        sa.Column("input_tokens", sa.Integer(), nullable=False),
        sa.Column("output_tokens", sa.Integer(), nullable=False),
        sa.Column("tokens_estimated", sa.Boolean(), nullable=False),
        sa.Column("cost_usd", sa.Float(), nullable=False),
        sa.Column("quality_score", sa.Float(), nullable=True),
        sa.Column("quality_checks", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("feedback_score", sa.Float(), nullable=True),
        sa.Column("feedback_label", sa.String(length=255), nullable=True),
        sa.Column("key_id", sa.Uuid(), nullable=True),
        sa.Column("correlation_id", sa.String(length=255), nullable=False),
        sa.Column("prompt", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("response", sa.Text(), nullable=True),
        sa.Column("metadata", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column(
            "created_at",
            advanced_alchemy.types.datetime.DateTimeUTC(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_metrics_executions")),
    )
    op.create_index("uq_metrics_executions_attempt", "metrics_executions", ["execution_id", "attempt"], unique=True)
    op.create_index("ix_metrics_executions_task_type_id", "metrics_executions", ["task_type", "id"], unique=False)
    op.create_index("ix_metrics_executions_model_id_id", "metrics_executions", ["model_id", "id"], unique=False)
    op.create_index("ix_metrics_executions_key_created", "metrics_executions", ["key_id", "created_at"], unique=False)
    op.create_table(
        "metrics_model_stats",
        sa.Column("task_type", sa.String(length=64), nullable=False),
        sa.Column("model_id", sa.String(length=64), nullable=False),
        sa.Column("samples", sa.BigInteger(), nullable=False),
        sa.Column("successes", sa.BigInteger(), nullable=False),
        sa.Column("latency_ewma_ms", sa.Float(), nullable=False),
        sa.Column("latency_ewvar", sa.Float(), nullable=False),
        sa.Column("cost_total_usd", sa.Float(), nullable=False),
        sa.Column("quality_n", sa.BigInteger(), nullable=False),
        sa.Column("quality_mean", sa.Float(), nullable=False),
        sa.Column("quality_m2", sa.Float(), nullable=False),
        sa.Column(
            "updated_at",
            advanced_alchemy.types.datetime.DateTimeUTC(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("task_type", "model_id", name=op.f("pk_metrics_model_stats")),
    )


def downgrade() -> None:
    op.drop_table("metrics_model_stats")
    op.drop_index("ix_metrics_executions_key_created", table_name="metrics_executions")
    op.drop_index("ix_metrics_executions_model_id_id", table_name="metrics_executions")
    op.drop_index("ix_metrics_executions_task_type_id", table_name="metrics_executions")
    op.drop_index("uq_metrics_executions_attempt", table_name="metrics_executions")
    op.drop_table("metrics_executions")
