"""Indexes for item queries: sort/range columns with the id tiebreaker, the mimetype that
preprocessing writes into metadata.system, and (PostgreSQL) a GIN index over metadata.user.

The expressions must stay identical to the ones services/catalog/filter_sql.py writes, or the
databases will not use them (tests/catalog/test_query_plans.py checks the plans).

Revision ID: 0003_queries
Revises: 0002_links
Create Date: 2026-11-24
"""

from __future__ import annotations

from alembic import op

revision = "0003_queries"
down_revision = "0002_links"
branch_labels = None
depends_on = None

# (name, columns): keyset paging by these sort keys reads the index in order.
_SORT_INDEXES = (
    ("ix_items_dataset_name_id", ["dataset_id", "name", "id"]),
    ("ix_items_dataset_size_id", ["dataset_id", "size", "id"]),
    ("ix_items_dataset_create_time_id", ["dataset_id", "create_time", "id"]),
    ("ix_items_dataset_update_time_id", ["dataset_id", "update_time", "id"]),
)
_MIMETYPE = {
    "postgresql": "((metadata_system ->> 'mimetype') COLLATE \"C\")",
    "sqlite": "json_extract(metadata_system, '$.mimetype')",
}


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    for name, columns in _SORT_INDEXES:
        op.create_index(name, "items", columns)
    op.execute(f"CREATE INDEX ix_items_dataset_mimetype ON items "
               f"(dataset_id, {_MIMETYPE[dialect]})")
    if dialect == "postgresql":
        # jsonb_path_ops: smaller and faster than the default opclass for @> (containment),
        # which is how equality on any metadata.user key is asked.
        op.execute("CREATE INDEX ix_items_metadata_user ON items "
                   "USING gin (metadata_user jsonb_path_ops)")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.drop_index("ix_items_metadata_user", "items")
    op.drop_index("ix_items_dataset_mimetype", "items")
    for name, _columns in reversed(_SORT_INDEXES):
        op.drop_index(name, "items")
