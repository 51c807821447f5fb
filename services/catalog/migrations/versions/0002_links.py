"""Link items (URL + declared mimetype) and a thumbnail reference column, so blobs and
thumbnails shared by clones are deleted only when no item refers to them.

Revision ID: 0002_links
Revises: 0001
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_links"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("items") as batch:
        batch.add_column(sa.Column("link_url", sa.Text, nullable=False, server_default=""))
        batch.add_column(
            sa.Column("link_mimetype", sa.String(255), nullable=False, server_default=""))
        batch.add_column(
            sa.Column("thumbnail_key", sa.String(512), nullable=False, server_default=""))
    op.create_index("ix_items_thumbnail_key", "items", ["thumbnail_key"])
    # Items preprocessed before this revision keep their thumbnail key in metadata_system.
    if op.get_bind().dialect.name == "postgresql":
        op.execute("UPDATE items SET thumbnail_key = metadata_system->'thumbnail'->>'key' "
                   "WHERE metadata_system->'thumbnail'->>'key' IS NOT NULL")
    else:
        op.execute("UPDATE items SET thumbnail_key = json_extract(metadata_system, "
                   "'$.thumbnail.key') WHERE json_extract(metadata_system, '$.thumbnail.key') "
                   "IS NOT NULL")


def downgrade() -> None:
    op.drop_index("ix_items_thumbnail_key", "items")
    with op.batch_alter_table("items") as batch:
        batch.drop_column("thumbnail_key")
        batch.drop_column("link_mimetype")
        batch.drop_column("link_url")
