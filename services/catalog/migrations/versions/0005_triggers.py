"""Triggers (a user function's filtered subscription to item events) and the items each
once-trigger has run for.

Revision ID: 0005_triggers
Revises: 0004_event_leases
Create Date: 2026-12-08
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from services.catalog.models import Json, Timestamp

revision = "0005_triggers"
down_revision = "0004_event_leases"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "triggers",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("project", sa.String(128), nullable=False, server_default="default"),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("description", sa.Text, nullable=False, server_default=""),
        sa.Column("dataset_id", sa.String(32), nullable=False, server_default=""),
        sa.Column("filter", Json, nullable=True),
        sa.Column("actions", sa.String(64), nullable=False),
        sa.Column("mode", sa.String(16), nullable=False),
        sa.Column("paused", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("create_time", Timestamp, nullable=False),
        sa.Column("update_time", Timestamp, nullable=False),
    )
    op.create_index("ix_triggers_project_name", "triggers", ["project", "name"], unique=True)
    op.create_table(
        "trigger_runs",
        sa.Column("trigger_id", sa.String(32), primary_key=True),
        sa.Column("item_id", sa.String(32), primary_key=True),
        # The event whose run claimed the item: its re-delivery may run again, no other.
        sa.Column("event_seq", sa.BigInteger, nullable=False),
        sa.Column("status", sa.String(16), nullable=False, server_default="running"),
        sa.Column("update_time", Timestamp, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("trigger_runs")
    op.drop_index("ix_triggers_project_name", "triggers")
    op.drop_table("triggers")
