"""hooks: namespaces on hooks and webhook sources; sessions, tool calls and statistics keyed by namespace and source

``hook_sessions`` was keyed by ``session_id`` alone, so another source could end Claude Code's session; it
is now keyed by (namespace, source, session_id). Tool calls pair within (namespace, source) and the
per-type statistics are kept per namespace, so a namespace-restricted key sees only its own. Existing
rows get the namespace ``default``. The downgrade merges rows that only the new key told apart.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _namespace(comment: str | None = None) -> sa.Column:
    return sa.Column("namespace", sa.String(length=255), server_default="default", nullable=False, comment=comment)


def upgrade() -> None:
    op.add_column("hook_events", _namespace())
    op.create_index("ix_hook_events_namespace_id", "hook_events", ["namespace", "id"], unique=False)
    op.add_column("hooks_sources", _namespace("Namespace of the hooks it posts"))

    op.add_column("hook_sessions", _namespace())
    op.drop_constraint("pk_hook_sessions", "hook_sessions", type_="primary")
    op.create_primary_key("pk_hook_sessions", "hook_sessions", ["namespace", "source", "session_id"])
    op.create_index("ix_hook_sessions_session_id", "hook_sessions", ["session_id"], unique=False)
    # Keys are written explicitly from now on; the default only filled the existing rows.
    op.alter_column("hook_sessions", "namespace", server_default=None)

    op.add_column("hooks_tool_calls", _namespace())
    op.drop_constraint("uq_hooks_tool_calls_source", "hooks_tool_calls", type_="unique")
    op.create_unique_constraint(
        "uq_hooks_tool_calls_namespace", "hooks_tool_calls", ["namespace", "source", "tool_call_id"]
    )

    op.add_column("hooks_source_stats", _namespace())
    op.drop_constraint("pk_hooks_source_stats", "hooks_source_stats", type_="primary")
    op.create_primary_key("pk_hooks_source_stats", "hooks_source_stats", ["namespace", "source", "event_type"])
    op.alter_column("hooks_source_stats", "namespace", server_default=None)


def downgrade() -> None:
    # Statistics: sum the namespaces of each (source, event_type) into one row.
    op.execute(
        """
        WITH merged AS (
            SELECT source, event_type, sum(count) AS count, min(first_seen) AS first_seen,
                   max(last_seen) AS last_seen, min(namespace) AS keep
            FROM hooks_source_stats GROUP BY source, event_type
        ), kept AS (
            UPDATE hooks_source_stats AS s SET count = m.count, first_seen = m.first_seen, last_seen = m.last_seen
            FROM merged AS m
            WHERE s.source = m.source AND s.event_type = m.event_type AND s.namespace = m.keep
        )
        DELETE FROM hooks_source_stats AS s USING merged AS m
        WHERE s.source = m.source AND s.event_type = m.event_type AND s.namespace <> m.keep
        """
    )
    op.drop_constraint("pk_hooks_source_stats", "hooks_source_stats", type_="primary")
    op.drop_column("hooks_source_stats", "namespace")
    op.create_primary_key("pk_hooks_source_stats", "hooks_source_stats", ["source", "event_type"])

    # Tool calls and sessions: keep the most recently updated row of each old key.
    op.execute(
        """
        DELETE FROM hooks_tool_calls AS a USING hooks_tool_calls AS b
        WHERE a.source = b.source AND a.tool_call_id = b.tool_call_id AND (a.updated_at, a.id) < (b.updated_at, b.id)
        """
    )
    op.drop_constraint("uq_hooks_tool_calls_namespace", "hooks_tool_calls", type_="unique")
    op.drop_column("hooks_tool_calls", "namespace")
    op.create_unique_constraint("uq_hooks_tool_calls_source", "hooks_tool_calls", ["source", "tool_call_id"])

    op.execute(
        """
        DELETE FROM hook_sessions AS a USING hook_sessions AS b
        WHERE a.session_id = b.session_id
          AND (a.last_seen, a.source, a.namespace) < (b.last_seen, b.source, b.namespace)
        """
    )
    op.drop_index("ix_hook_sessions_session_id", table_name="hook_sessions")
    op.drop_constraint("pk_hook_sessions", "hook_sessions", type_="primary")
    op.drop_column("hook_sessions", "namespace")
    op.create_primary_key("pk_hook_sessions", "hook_sessions", ["session_id"])

    op.drop_column("hooks_sources", "namespace")
    op.drop_index("ix_hook_events_namespace_id", table_name="hook_events")
    op.drop_column("hook_events", "namespace")
