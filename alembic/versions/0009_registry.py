"""registry: node registrations, the tool index, MCP server versions and the catalog's index sequence

Revision ID: 0009_registry
Revises: 0008
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import advanced_alchemy.types
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0009_registry"
down_revision: str | Sequence[str] | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TS = advanced_alchemy.types.DateTimeUTC(timezone=True)


def upgrade() -> None:
    op.execute("CREATE SEQUENCE registry_index_seq")
    op.create_table(
        "node_registrations",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("node_id", sa.String(length=255), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("node_type", sa.String(length=32), nullable=False),
        sa.Column("version", sa.String(length=128), nullable=False),
        sa.Column("address", sa.String(length=255), nullable=True),
        sa.Column("port", sa.Integer(), nullable=True),
        sa.Column("url", sa.Text(), nullable=True),
        sa.Column("tags", postgresql.ARRAY(sa.String(length=255)), nullable=False),
        sa.Column("meta", postgresql.JSONB(), nullable=False),
        sa.Column("capabilities", postgresql.JSONB(), nullable=False),
        sa.Column("tools", postgresql.JSONB(), nullable=False),
        sa.Column("check_kind", sa.String(length=8), nullable=False),
        sa.Column("check_ttl_seconds", sa.Float(), nullable=True),
        sa.Column("check_http", sa.Text(), nullable=True),
        sa.Column("check_interval_seconds", sa.Float(), nullable=True),
        sa.Column("check_timeout_seconds", sa.Float(), nullable=True),
        sa.Column("deregister_critical_after_seconds", sa.Float(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("output", sa.Text(), nullable=False),
        sa.Column("status_changed_at", _TS, nullable=False),
        sa.Column("last_heartbeat_at", _TS, nullable=True),
        sa.Column("last_checked_at", _TS, nullable=True),
        sa.Column("create_index", sa.BigInteger(), nullable=False),
        sa.Column("modify_index", sa.BigInteger(), nullable=False),
        sa.Column("registered_at", _TS, server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", _TS, server_default=sa.text("now()"), nullable=False),
        sa.Column("deleted_at", _TS, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_node_registrations")),
    )
    op.create_index("uq_node_registrations_node_id", "node_registrations", ["node_id"], unique=True)
    op.create_index("ix_node_registrations_name", "node_registrations", ["name"])
    op.create_index(
        "ix_node_registrations_capabilities", "node_registrations", ["capabilities"], postgresql_using="gin"
    )
    op.create_index("ix_node_registrations_tags", "node_registrations", ["tags"], postgresql_using="gin")
    op.create_table(
        "registry_tools",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("node_id", sa.String(length=255), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("input_schema", postgresql.JSONB(), nullable=False),
        sa.Column(
            "search",
            postgresql.TSVECTOR(),
            sa.Computed(
                "setweight(to_tsvector('english', replace(name, '_', ' ')), 'A') || "
                "setweight(to_tsvector('english', description), 'B')",
                persisted=True,
            ),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_registry_tools")),
    )
    op.create_index("ix_registry_tools_search", "registry_tools", ["search"], postgresql_using="gin")
    op.create_index("ix_registry_tools_node_id", "registry_tools", ["node_id"])
    op.create_table(
        "mcp_server_versions",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("version", sa.String(length=255), nullable=False),
        sa.Column("description", sa.String(length=100), nullable=False),
        sa.Column("server", postgresql.JSONB(), nullable=False),
        sa.Column("is_latest", sa.Boolean(), nullable=False),
        sa.Column("published_at", _TS, server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", _TS, server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mcp_server_versions")),
    )
    op.create_index("uq_mcp_server_versions", "mcp_server_versions", ["name", "version"], unique=True)


def downgrade() -> None:
    op.drop_table("mcp_server_versions")
    op.drop_table("registry_tools")
    op.drop_table("node_registrations")
    op.execute("DROP SEQUENCE registry_index_seq")
