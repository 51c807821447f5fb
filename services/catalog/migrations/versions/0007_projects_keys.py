"""Projects and API keys (issue 7): projects own datasets; keys are stored as the SHA-256 of
their secret, bound to one project with a role, or instance-wide (project NULL).

Revision ID: 0007_projects_keys
Revises: 0006_dataset_preprocessing
Create Date: 2026-11-24
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = "0007_projects_keys"
down_revision = "0006_dataset_preprocessing"
branch_labels = None
depends_on = None


def upgrade() -> None:
    projects = op.create_table(
        "projects",
        sa.Column("name", sa.String(128), primary_key=True),
        sa.Column("description", sa.Text(), nullable=False, server_default=""),
        sa.Column("create_time", sa.DateTime(timezone=True), nullable=False),
    )
    # Every dataset created before projects existed belongs to "default".
    op.bulk_insert(projects, [{"name": "default", "description": "",
                               "create_time": datetime.now(UTC)}])
    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(16), primary_key=True),
        sa.Column("project", sa.String(128), nullable=True),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("secret_sha256", sa.String(64), nullable=False),
        sa.Column("description", sa.Text(), nullable=False, server_default=""),
        sa.Column("create_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoke_time", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_api_keys_project", "api_keys", ["project"])


def downgrade() -> None:
    op.drop_index("ix_api_keys_project", "api_keys")
    op.drop_table("api_keys")
    op.drop_table("projects")
