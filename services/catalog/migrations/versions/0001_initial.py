"""Datasets, items (files and folders), the events outbox and consumer groups.

Revision ID: 0001
Revises:
Create Date: 2025-01-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from services.catalog.models import PG_TXID_DEFAULT, Json, Path, Seq, Timestamp

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    is_postgres = op.get_bind().dialect.name == "postgresql"
    op.create_table(
        "datasets",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("project", sa.String(128), nullable=False, server_default="default"),
        sa.Column("name", Path, nullable=False),
        sa.Column("description", sa.Text, nullable=False, server_default=""),
        sa.Column("create_time", Timestamp, nullable=False),
        sa.Column("request_id", sa.String(128), nullable=True),
    )
    op.create_index("ix_datasets_project_name", "datasets", ["project", "name"], unique=True)
    op.create_index("ix_datasets_project_request_id", "datasets", ["project", "request_id"],
                    unique=True)

    op.create_table(
        "items",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("dataset_id", sa.String(32),
                  sa.ForeignKey("datasets.id", ondelete="CASCADE",
                                name="fk_items_dataset_id_datasets"),
                  nullable=False),
        sa.Column("dir", Path, nullable=False),
        sa.Column("name", Path, nullable=False),
        sa.Column("filename", Path, nullable=False),
        sa.Column("type", sa.String(8), nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("sha256", sa.String(64), nullable=False, server_default=""),
        sa.Column("blob_key", sa.String(512), nullable=False, server_default=""),
        sa.Column("description", sa.Text, nullable=False, server_default=""),
        sa.Column("metadata_system", Json, nullable=False),
        sa.Column("metadata_user", Json, nullable=False),
        sa.Column("create_time", Timestamp, nullable=False),
        sa.Column("update_time", Timestamp, nullable=False),
        sa.Column("request_id", sa.String(128), nullable=True),
        sa.Column("request_outcome", sa.String(16), nullable=True),
    )
    op.create_index("ix_items_dataset_filename", "items", ["dataset_id", "filename"], unique=True)
    op.create_index("ix_items_dataset_dir_filename", "items", ["dataset_id", "dir", "filename"])
    op.create_index("ix_items_dataset_request_id", "items", ["dataset_id", "request_id"],
                    unique=True)
    op.create_index("ix_items_blob_key", "items", ["blob_key"])

    op.create_table(
        "events",
        sa.Column("seq", Seq, primary_key=True, autoincrement=True),
        sa.Column("txid", sa.BigInteger, nullable=False,
                  server_default=sa.text(PG_TXID_DEFAULT) if is_postgres else "0"),
        sa.Column("type", sa.String(16), nullable=False),
        sa.Column("item_id", sa.String(32), nullable=False),
        sa.Column("dataset_id", sa.String(32), nullable=False),
        sa.Column("payload", Json, nullable=False),
        sa.Column("create_time", Timestamp, nullable=False),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_events_txid_seq", "events", ["txid", "seq"])

    op.create_table(
        "consumer_groups",
        sa.Column("name", sa.String(128), primary_key=True),
        sa.Column("committed_seq", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("committed_txid", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("update_time", Timestamp, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("consumer_groups")
    op.drop_table("events")
    op.drop_table("items")
    op.drop_table("datasets")
