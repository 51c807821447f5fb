"""Dataset preprocessing modes (global, private, off) and the dataset-mode filter of leased
consumer groups.

Revision ID: 0006_dataset_preprocessing
Revises: 0005_triggers
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006_dataset_preprocessing"
down_revision = "0005_triggers"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("datasets") as batch:
        batch.add_column(sa.Column("preprocessing", sa.String(16), nullable=False,
                                   server_default="global"))
    # NULL: a group created before this revision; its first subscriber after it sets the
    # filter (the groups existing now are preprocess pools that never filtered by mode).
    with op.batch_alter_table("leased_groups") as batch:
        batch.add_column(sa.Column("dataset_modes", sa.String(64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("leased_groups") as batch:
        batch.drop_column("dataset_modes")
    with op.batch_alter_table("datasets") as batch:
        batch.drop_column("preprocessing")
