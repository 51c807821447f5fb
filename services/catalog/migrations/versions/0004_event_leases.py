"""Leased consumer groups (events shared by many subscribers, re-delivered when a lease
expires) and the event retention mark.

Revision ID: 0004_event_leases
Revises: 0003_queries
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from services.catalog.models import Timestamp

revision = "0004_event_leases"
down_revision = "0003_queries"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "leased_groups",
        sa.Column("name", sa.String(128), primary_key=True),
        sa.Column("event_types", sa.String(64), nullable=False, server_default=""),
        sa.Column("dataset_id", sa.String(32), nullable=False, server_default=""),
        sa.Column("frontier_txid", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("frontier_seq", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("create_time", Timestamp, nullable=False),
    )
    op.create_table(
        "event_leases",
        sa.Column("group_name", sa.String(128), primary_key=True),
        sa.Column("seq", sa.BigInteger, primary_key=True),
        sa.Column("txid", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("owner", sa.String(128), nullable=False, server_default=""),
        sa.Column("lease_expire_ms", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    )
    op.create_index("ix_event_leases_group_txid_seq", "event_leases",
                    ["group_name", "txid", "seq"])
    op.create_index("ix_event_leases_group_owner", "event_leases", ["group_name", "owner"])
    op.create_table(
        "event_retention",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("trimmed_txid", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("trimmed_seq", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("update_time", Timestamp, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("event_retention")
    op.drop_index("ix_event_leases_group_owner", "event_leases")
    op.drop_index("ix_event_leases_group_txid_seq", "event_leases")
    op.drop_table("event_leases")
    op.drop_table("leased_groups")
